"""Audio view transforms: `t(audio, g) -> Audio`, run in DataLoader workers like the image ones.

    "views": {"audio": [{"type": "resample", "sample_rate": 16000}, {"type": "fbank", "num_mel_bins": 64},
                        {"type": "crop_frames", "frames": 96}, {"type": "specaugment"},
                        {"type": "frame_mask", "frames_per_token": 4, "ratio": 0.5}]}

fbank and specaugment are torchaudio's own (torchaudio.compliance.kaldi.fbank,
torchaudio.functional.mask_along_axis). Those draw from torch's global generator, so we run them under a
forked generator seeded from the view's generator `g`: a sample's augmentation stays a function of
(seed, position, view) whichever worker builds it, as for images.
"""
from __future__ import annotations

import torch

from ...errors import DataError
from ...registry import TRANSFORMS, config_error
from ..audio import Audio
from .transforms import Transform

NORMALIZE = ("none", "utterance", "per_bin")


class AudioTransform(Transform):
    reads = "audio"  # the pipeline feeds these views raw["audio"] (see pipeline.view_field)


def _forked_seed(g: torch.Generator) -> int:
    return int(torch.randint(0, 2 ** 62, (1,), generator=g))


def _need_features(audio: Audio, name: str) -> torch.Tensor:
    if audio.features is None:
        raise DataError(f"'{name}' works on fbank features: put it after the 'fbank' step")
    return audio.features


@TRANSFORMS.register("resample")
class Resample(AudioTransform):
    """To `sample_rate` Hz (torchaudio's windowed-sinc resampler); a clip already at that rate is untouched."""

    def __init__(self, *, sample_rate: int):
        if sample_rate < 1000:
            raise config_error(f"sample_rate must be >= 1000 Hz, got {sample_rate}", "sample_rate")
        self.sample_rate = sample_rate

    def __call__(self, audio: Audio, g: torch.Generator) -> Audio:
        if audio.features is not None:
            raise DataError("'resample' works on the waveform: put it before the 'fbank' step")
        if audio.sample_rate == self.sample_rate:
            return audio
        import torchaudio.functional as AF
        wave = AF.resample(audio.waveform, audio.sample_rate, self.sample_rate)
        return audio.replaced(waveform=wave, sample_rate=self.sample_rate)


@TRANSFORMS.register("fbank")
class Fbank(AudioTransform):
    """Kaldi log-mel filterbank features (T, num_mel_bins) from torchaudio, then optional normalisation:
    "utterance" subtracts the clip's mean and divides by its std over all bins and frames (keeps the
    spectral shape, removes the gain); "per_bin" is per-bin CMVN over time (the speech convention; it erases
    steady tones). `scale` multiplies the [-1, 1] waveform first (32768: Kaldi's 16-bit range)."""
    featurizer = True

    def __init__(self, *, num_mel_bins: int = 80, frame_length: float = 25.0, frame_shift: float = 10.0,
                 dither: float = 0.0, scale: float = 32768.0, normalize: str = "utterance",
                 low_freq: float = 20.0, high_freq: float = 0.0, eps: float = 1e-5):
        if num_mel_bins < 1:
            raise config_error(f"num_mel_bins must be >= 1, got {num_mel_bins}", "num_mel_bins")
        if normalize not in NORMALIZE:
            raise config_error(f"normalize must be one of {', '.join(NORMALIZE)}, got '{normalize}'", "normalize")
        if frame_shift <= 0 or frame_length < frame_shift:
            raise config_error(f"need 0 < frame_shift <= frame_length (ms), got {frame_shift} and {frame_length}",
                               "frame_shift")
        self.kwargs = dict(num_mel_bins=num_mel_bins, frame_length=frame_length, frame_shift=frame_shift,
                           dither=dither, low_freq=low_freq, high_freq=high_freq)
        self.num_mel_bins, self.scale, self.normalize, self.eps = num_mel_bins, scale, normalize, eps

    def features(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """(N,) waveform -> (T, num_mel_bins): torchaudio's kaldi fbank, unnormalised."""
        import torchaudio.compliance.kaldi as kaldi
        window = int(sample_rate * self.kwargs["frame_length"] / 1000)
        if waveform.numel() < window:
            raise DataError(f"audio clip of {waveform.numel()} samples is shorter than one "
                            f"{self.kwargs['frame_length']} ms frame")
        return kaldi.fbank(waveform.float().unsqueeze(0) * self.scale, sample_frequency=float(sample_rate),
                           **self.kwargs)

    def __call__(self, audio: Audio, g: torch.Generator) -> Audio:
        seed = _forked_seed(g)  # drawn whatever dither is, so later draws do not depend on it
        if self.kwargs["dither"]:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                feats = self.features(audio.waveform, audio.sample_rate)
        else:
            feats = self.features(audio.waveform, audio.sample_rate)
        if self.normalize == "utterance":
            feats = (feats - feats.mean()) / (feats.std() + self.eps)
        elif self.normalize == "per_bin":
            feats = (feats - feats.mean(0)) / (feats.std(0) + self.eps)
        return audio.replaced(features=feats)


@TRANSFORMS.register("crop_frames")
class CropFrames(AudioTransform):
    """A fixed `frames`-long window of the features (random start, or the start with random: false); a
    shorter clip is padded at the end with `pad_value` (0 = the mean after normalisation)."""
    geometric = True  # moves frames: a masker must come after it

    def __init__(self, *, frames: int, random: bool = True, pad_value: float = 0.0):
        if frames < 1:
            raise config_error(f"frames must be >= 1, got {frames}", "frames")
        self.frames, self.random, self.pad_value = frames, random, pad_value

    def __call__(self, audio: Audio, g: torch.Generator) -> Audio:
        feats = _need_features(audio, "crop_frames")
        u = float(torch.rand(1, generator=g))
        t = feats.shape[0]
        if t >= self.frames:
            start = int(u * (t - self.frames + 1)) if self.random else 0
            return audio.replaced(features=feats[start:start + self.frames])
        pad = feats.new_full((self.frames - t, feats.shape[1]), self.pad_value)
        return audio.replaced(features=torch.cat([feats, pad], 0))


@TRANSFORMS.register("specaugment")
class SpecAugment(AudioTransform):
    """SpecAugment's frequency and time masking (Park et al. 2019) with torchaudio's mask_along_axis: each of
    `freq_masks` masks zeroes up to `freq_width` bins, each of `time_masks` up to `time_width` frames."""

    def __init__(self, *, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 10,
                 mask_value: float = 0.0, p: float = 1.0):
        for key, v in (("freq_masks", freq_masks), ("freq_width", freq_width), ("time_masks", time_masks),
                       ("time_width", time_width)):
            if v < 0:
                raise config_error(f"{key} must be >= 0, got {v}", key)
        if not 0.0 <= p <= 1.0:
            raise config_error(f"p must be a probability in [0, 1], got {p}", "p")
        self.freq, self.time, self.mask_value, self.p = (freq_masks, freq_width), (time_masks, time_width), \
            mask_value, p

    def __call__(self, audio: Audio, g: torch.Generator) -> Audio:
        import torchaudio.functional as AF
        feats = _need_features(audio, "specaugment")
        apply, seed = bool(torch.rand(1, generator=g) < self.p), _forked_seed(g)
        if not apply:
            return audio
        spec = feats.T.unsqueeze(0).clone()  # (1, n_mels, T): torchaudio's (channel, freq, time)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for (count, width), axis in ((self.freq, 1), (self.time, 2)):
                for _ in range(count if width else 0):
                    spec = AF.mask_along_axis(spec, width, self.mask_value, axis)
        return audio.replaced(features=spec[0].T.contiguous())


@TRANSFORMS.register("frame_mask")
class FrameMask(AudioTransform):
    """Masker over the speech embedding's tokens: token i covers frames [i*k, (i+1)*k) with k =
    `frames_per_token` (the subsampler's stride). Exactly round(ratio * L) tokens are masked, in spans of
    `span` tokens (wav2vec 2.0 / HuBERT style) topped up with single tokens, so a batch stacks."""
    masker = True

    def __init__(self, *, frames_per_token: int, ratio: float, span: int = 1, attempts: int = 20):
        if frames_per_token < 1:
            raise config_error(f"frames_per_token must be >= 1, got {frames_per_token}", "frames_per_token")
        if not 0.0 <= ratio < 1.0:
            raise config_error(f"ratio must be in [0, 1), got {ratio}", "ratio")
        if span < 1:
            raise config_error(f"span must be >= 1, got {span}", "span")
        self.k, self.ratio, self.span, self.attempts = frames_per_token, float(ratio), span, attempts

    def __call__(self, audio: Audio, g: torch.Generator) -> Audio:
        t = _need_features(audio, "frame_mask").shape[0]
        if t % self.k:
            raise DataError(f"{t} frames do not split into tokens of {self.k} frames; make crop_frames' "
                            f"frames a multiple of {self.k}")
        n = t // self.k
        mask = torch.zeros(n, dtype=torch.bool)
        left, misses = int(round(self.ratio * n)), 0
        while left >= self.span > 1 and misses < self.attempts:
            s = int(torch.randint(0, n - self.span + 1, (1,), generator=g))
            if bool(mask[s:s + self.span].any()):
                misses += 1
                continue
            mask[s:s + self.span] = True
            left -= self.span
        if left > 0:  # top up to the exact count
            free = (~mask).nonzero().flatten()
            mask[free[torch.randperm(len(free), generator=g)[:left]]] = True
        return audio.replaced(mask=mask)
