"""Audio views: fbank is torchaudio's, the other transforms do what they say, and the pipeline stacks them."""
import math

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from m3i_modular.data import PretrainDataset, build_views, collate
from m3i_modular.data.audio import Audio
from m3i_modular.data.views.audio_transforms import CropFrames, Fbank, FrameMask, Resample, SpecAugment
from m3i_modular.errors import ConfigError, DataError


def _tone(freq=440.0, rate=16000, seconds=0.5):
    t = torch.arange(int(rate * seconds)) / rate
    return Audio(waveform=0.5 * torch.sin(2 * math.pi * freq * t), sample_rate=rate)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_fbank_is_torchaudio_kaldi_fbank():
    a = _tone()
    a.waveform = a.waveform + 0.01 * torch.randn(a.waveform.shape, generator=_g(1))
    ours = Fbank(num_mel_bins=23, normalize="none", scale=32768.0)(a, _g()).features
    ref = kaldi.fbank(a.waveform.unsqueeze(0) * 32768.0, num_mel_bins=23, sample_frequency=16000.0,
                      frame_length=25.0, frame_shift=10.0, dither=0.0, low_freq=20.0, high_freq=0.0)
    assert torch.equal(ours, ref)
    assert ours.shape == (1 + (8000 - 400) // 160, 23)  # kaldi's snip_edges frame count


def test_fbank_dither_is_seeded_by_the_view_generator():
    f = Fbank(num_mel_bins=16, dither=1.0, normalize="none")
    a = _tone()
    assert torch.equal(f(a, _g(3)).features, f(a, _g(3)).features)
    assert not torch.equal(f(a, _g(3)).features, f(a, _g(4)).features)


def test_utterance_normalisation_and_tone_peak_bin():
    out = Fbank(num_mel_bins=40, normalize="utterance")(_tone(1000.0), _g()).features
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 1e-3
    low = Fbank(num_mel_bins=40, normalize="utterance")(_tone(200.0), _g()).features
    assert int(out.mean(0).argmax()) > int(low.mean(0).argmax())  # a higher tone peaks in a higher bin


def test_resample_length_and_frequency():
    a = _tone(1000.0, rate=16000, seconds=0.5)
    b = Resample(sample_rate=8000)(a, _g())
    assert b.sample_rate == 8000 and b.waveform.numel() == 4000
    spec = torch.fft.rfft(b.waveform).abs()
    assert abs(int(spec.argmax()) * 8000 / 4000 - 1000.0) <= 2.0
    assert Resample(sample_rate=16000)(a, _g()) is a


def test_crop_frames_crops_and_pads():
    feats = torch.arange(50 * 4, dtype=torch.float32).reshape(50, 4)
    a = Audio(waveform=torch.zeros(1), sample_rate=16000, features=feats)
    out = CropFrames(frames=20)(a, _g()).features
    start = int(out[0, 0]) // 4
    assert torch.equal(out, feats[start:start + 20])
    assert torch.equal(CropFrames(frames=20, random=False)(a, _g()).features, feats[:20])
    padded = CropFrames(frames=60, pad_value=-1.0)(a, _g()).features
    assert torch.equal(padded[:50], feats) and bool((padded[50:] == -1).all())


def test_specaugment_masks_bands_deterministically():
    feats = torch.ones(100, 40)
    a = Audio(waveform=torch.zeros(1), sample_rate=16000, features=feats)
    t = SpecAugment(freq_masks=1, freq_width=10, time_masks=0, time_width=0)
    out = t(a, _g(5)).features
    assert torch.equal(out, t(a, _g(5)).features)
    zero_bins = (out == 0).all(0)
    assert int(zero_bins.sum()) == int((out == 0).sum()) // 100  # whole bins are zeroed, nothing else
    assert int(zero_bins.sum()) < 10
    assert torch.equal(SpecAugment(p=0.0)(a, _g()).features, feats)


@pytest.mark.parametrize("span", [1, 3])
def test_frame_mask_exact_count(span):
    a = Audio(waveform=torch.zeros(1), sample_rate=16000, features=torch.zeros(96, 8))
    m = FrameMask(frames_per_token=4, ratio=0.4, span=span)
    masks = [m(a, _g(s)).mask for s in range(20)]
    assert all(x.shape == (24,) and int(x.sum()) == round(0.4 * 24) for x in masks)
    assert len({tuple(x.tolist()) for x in masks}) > 1
    with pytest.raises(DataError, match="multiple of 4"):
        m(Audio(waveform=torch.zeros(1), sample_rate=16000, features=torch.zeros(94, 8)), _g())


def test_pipeline_builds_audio_views_and_masks():
    views = build_views({"audio": [{"type": "fbank", "num_mel_bins": 16}, {"type": "crop_frames", "frames": 64},
                                   {"type": "frame_mask", "frames_per_token": 4, "ratio": 0.5}]})
    ds = PretrainDataset({"sources": [{"type": "synthetic_audio", "num_samples": 8}]}, views, seed=1)
    batch = collate([ds[i] for i in range(4)])
    assert batch["views"]["audio"].shape == (4, 64, 16)
    assert batch["masks"]["audio"].shape == (4, 16) and bool((batch["masks"]["audio"].sum(1) == 8).all())
    assert bool(batch["present"]["audio"].all()) and batch["geometry"] == {}
    assert torch.equal(ds[2]["views"]["audio"], ds[2]["views"]["audio"])  # a function of the position


def test_view_config_errors():
    with pytest.raises(ConfigError, match="fbank"):
        build_views({"a": [{"type": "crop_frames", "frames": 8}]})
    with pytest.raises(ConfigError, match="one modality"):
        build_views({"a": [{"type": "fbank"}, {"type": "flip"}]})
    with pytest.raises(ConfigError, match=r"views\.a\[2\].*masker"):
        build_views({"a": [{"type": "fbank"}, {"type": "frame_mask", "frames_per_token": 4, "ratio": 0.5},
                           {"type": "crop_frames", "frames": 8}]})
    views = build_views({"v": [{"type": "fbank"}]})
    ds = PretrainDataset({"sources": [{"type": "synthetic_shapes", "num_samples": 4}]}, views)
    with pytest.raises(DataError, match="has no audio"):
        ds[0]
