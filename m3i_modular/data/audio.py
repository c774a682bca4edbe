"""Audio in the data pipeline: the container audio views pass along, WAV/FLAC decoding with soundfile.

A raw sample carries `"audio": Audio(waveform, sample_rate)`; the transforms of an audio view (resample,
fbank, crop_frames, specaugment, frame_mask in audio_transforms.py) take and return an Audio, and the view's
output is its `features` (T, n_mels). We decode with soundfile rather than torchaudio.load, which needs FFmpeg
(often missing on training machines); soundfile bundles libsndfile (WAV, FLAC, OGG).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from ..errors import DataError, library_message

AUDIO_EXTS = ("wav", "flac", "ogg")


@dataclass
class Audio:
    waveform: torch.Tensor                       # float32 (N,) mono, in [-1, 1]
    sample_rate: int
    features: Optional[torch.Tensor] = None      # float (T, n_mels), set by a featurizer (fbank)
    mask: Optional[torch.Tensor] = None          # bool (L,) over the embedding's tokens, True = masked

    def replaced(self, **changes) -> "Audio":
        return replace(self, **changes)

    def tensor(self) -> torch.Tensor:
        """What an audio view hands to the batch: the features (T, n_mels)."""
        if self.features is None:
            raise DataError("an audio view must turn the waveform into features: add an 'fbank' step")
        return self.features


def decode_audio(data: bytes, *, expected_rate: int = 0) -> Audio:
    """WAV / FLAC / OGG bytes -> a mono Audio; DataError (one line: what and how to fix) when the header is
    corrupt, the clip has zero frames, or its rate differs from `expected_rate` (0 accepts any rate)."""
    import soundfile as sf

    try:
        array, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile reports bad headers and truncated data as RuntimeError / LibsndfileError
        raise DataError(f"cannot decode audio ({library_message(e)})") from None
    if array.shape[0] == 0:
        raise DataError("audio clip has zero frames; drop it when preprocessing")
    if expected_rate and rate != expected_rate:
        raise DataError(f"audio clip is {rate} Hz, the source expects {expected_rate} Hz; resample it with "
                        f"preprocess.py audio --sample-rate {expected_rate} or set the source's sample_rate: 0 "
                        f"and add a 'resample' step to the view")
    mono = array.mean(axis=1) if array.shape[1] > 1 else array[:, 0]  # downmix: the models take one channel
    return Audio(waveform=torch.from_numpy(np.ascontiguousarray(mono)), sample_rate=int(rate))


def encode_wav(waveform: torch.Tensor, sample_rate: int) -> bytes:
    """A mono float waveform -> 16-bit PCM WAV bytes."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, waveform.detach().float().clamp(-1, 1).numpy(), int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()
