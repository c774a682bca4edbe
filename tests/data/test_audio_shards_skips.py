"""Audio in tar shards: decoding errors are one DataError line, bad clips are skipped and counted, and
preprocess.py audio writes shards that read back as the clips they came from."""
import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from m3i_modular.data import PretrainDataset, build_views, collate
from m3i_modular.data.audio import decode_audio, encode_wav
from m3i_modular.data.sources.synthetic_audio import SyntheticAudio
from m3i_modular.preprocess.tar_writer import ShardWriter
from m3i_modular.errors import DataError


def _wav(n=1600, rate=16000, value=0.25):
    return encode_wav(torch.full((n,), value), rate)


def test_decode_round_trip_and_errors():
    wave = torch.linspace(-0.5, 0.5, 3200)
    a = decode_audio(encode_wav(wave, 16000), expected_rate=16000)
    assert a.sample_rate == 16000 and torch.allclose(a.waveform, wave, atol=1.0 / 32767)
    buf = io.BytesIO()
    sf.write(buf, np.zeros((800, 2), dtype=np.float32) + [0.5, -0.25], 8000, format="FLAC")
    assert torch.allclose(decode_audio(buf.getvalue()).waveform, torch.full((800,), 0.125), atol=1e-3)
    for data, rate, why in ((_wav(0), 0, "zero frames"), (_wav(rate=8000), 16000, "8000 Hz"),
                            (b"RIFF\x00\x01garbage" * 4, 0, "cannot decode audio")):
        with pytest.raises(DataError, match=why) as e:
            decode_audio(data, expected_rate=rate)
        assert "\n" not in str(e.value)


def test_bad_clips_in_shards_are_skipped_and_counted(tmp_path):
    bad = {2: _wav(0), 3: _wav(rate=8000), 4: b"RIFF\x00\x01garbage" * 4}
    with ShardWriter(str(tmp_path / "%06d.tar"), max_count=4) as w:
        for i in range(8):
            w.write(f"{i:06d}", {"wav": bad.get(i, _wav(value=0.01 * (i + 1))), "txt": f"clip {i}"})
    views = build_views({"a": [{"type": "fbank", "num_mel_bins": 8, "normalize": "none"},
                               {"type": "crop_frames", "frames": 8}]})
    ds = PretrainDataset({"sources": [{"type": "webdataset_shards", "shards": str(tmp_path),
                                       "sample_rate": 16000}], "max_skip_share": 1.0}, views)
    source = ds.sources[0]
    reasons = []
    for i in bad:
        with pytest.raises(DataError) as e:
            source[i]
        reasons.append(str(e.value))
    assert all("\n" not in r and ("000000.tar" in r or "000001.tar" in r) for r in reasons)
    batch = collate([ds[p] for p in range(len(ds))])
    # a bad clip is replaced by the next index of the source: landing on 2 reads 2, 3, 4 (three skips),
    # on 3 two, on 4 one
    assert int(batch["skipped"]) == 6 and len(batch["skipped_from"]) == 6
    assert sorted(set(batch["key"])) == [f"{i:06d}" for i in range(8) if i not in bad]
    assert batch["views"]["a"].shape == (8, 8, 8)


def test_preprocess_audio_synthetic_round_trip(tmp_path, cli):
    out = tmp_path / "shards"
    proc = cli("preprocess.py", "audio", "--synthetic", "6", "--output", str(out), "--shard-size", "4",
               check=True)
    assert "wrote 6 clips in 2 shard(s)" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"] == 6 and manifest["sample_rates"] == {"16000": 6}
    ds = PretrainDataset({"sources": [{"type": "webdataset_shards", "shards": str(out / "manifest.json")}]},
                         build_views({"a": [{"type": "fbank", "num_mel_bins": 8}]}))
    src = SyntheticAudio(num_samples=6)
    for i in range(6):
        raw, orig = ds.sources[0][i], src[i]
        assert raw["caption"] == orig["caption"] and raw["label"] == orig["label"]
        assert torch.allclose(raw["audio"].waveform, orig["audio"].waveform, atol=1.0 / 32767)
    bad = cli("preprocess.py", "audio", "--folder", str(tmp_path / "nope"), "--output", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not a directory" in bad.stderr
    assert not (tmp_path / "x").exists()
