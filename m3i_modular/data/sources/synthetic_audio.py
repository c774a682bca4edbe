"""`synthetic_audio`: an embedded audio-caption source generated on the fly, so speech recipes need no download.

Each clip (a function of (seed, split, index) alone) is `duration` seconds of a faint noise floor holding one
sound event: a tone, a rising or falling chirp, or a noise burst, at a low, mid or high pitch, short or long.
The caption states exactly those three attributes ("a short high rising chirp"); the label is their
combination (24 classes, `classes` lists the captions, so zero-shot classification is caption retrieval).
Loudness, exact frequency within the pitch band, onset time and the noise floor are nuisances.
"""
from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import torch

from ...registry import DATASETS, config_error
from ..audio import Audio
from .synthetic_base import SPLITS, SyntheticSource

KINDS = ("tone", "rising chirp", "falling chirp", "noise burst")
PITCHES = (("low", 150.0, 300.0), ("mid", 500.0, 1000.0), ("high", 1600.0, 3200.0))  # centre frequency, Hz
LENGTHS = (("short", 0.12, 0.3), ("long", 0.5, 0.8))                                     # seconds


def caption_of(kind: int, pitch: int, length: int) -> str:
    return f"a {LENGTHS[length][0]} {PITCHES[pitch][0]} {KINDS[kind]}"


CLASSES: List[str] = [caption_of(k, p, n) for k in range(len(KINDS)) for p in range(len(PITCHES))
                      for n in range(len(LENGTHS))]


def _event(rng: np.random.Generator, kind: int, f0: float, n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    if kind == 0:  # tone with a weaker second harmonic
        ph = 2 * math.pi * f0 * t + rng.uniform(0, 2 * math.pi)
        return np.sin(ph) + 0.3 * np.sin(2 * ph)
    if kind in (1, 2):  # exponential sweep over two octaves centred on f0
        lo, hi = f0 / 2.0, f0 * 2.0
        f_start, f_end = (lo, hi) if kind == 1 else (hi, lo)
        dur = n / rate
        k = math.log(f_end / f_start) / dur
        return np.sin(2 * math.pi * f_start * (np.exp(k * t) - 1.0) / k)
    noise = rng.standard_normal(n)  # band-limited noise: one octave around f0
    spec = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spec[(freqs < f0 / math.sqrt(2)) | (freqs > f0 * math.sqrt(2))] = 0
    band = np.fft.irfft(spec, n)
    return band / (np.abs(band).max() + 1e-8)


@DATASETS.register("synthetic_audio")
class SyntheticAudio(SyntheticSource):
    """Map-style source of raw samples {"key", "audio", "label", "caption", "image": None, "seg": None}."""

    classes = CLASSES

    def __init__(self, *, num_samples: int = 4096, sample_rate: int = 16000, duration: float = 1.0,
                 split: str = "train", seed: int = 0, label_fraction: float = 1.0, caption_fraction: float = 1.0):
        self._init_common(num_samples=num_samples, split=split, seed=seed, label_fraction=label_fraction,
                          caption_fraction=caption_fraction)
        if sample_rate < 8000:
            raise config_error(f"sample_rate must be >= 8000 Hz (the high band reaches 4.5 kHz), got "
                               f"{sample_rate}", "sample_rate")
        if not LENGTHS[-1][2] + 0.05 <= duration <= 30.0:
            raise config_error(f"duration must be in [{LENGTHS[-1][2] + 0.05}, 30] seconds, got {duration}",
                               "duration")
        self.sample_rate, self.duration = sample_rate, duration

    def attributes(self, index: int) -> Dict[str, int]:
        """The (kind, pitch, length) indices of clip `index`, without rendering it."""
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index % self.num_samples])
        rng.random(2)
        return {"kind": int(rng.integers(len(KINDS))), "pitch": int(rng.integers(len(PITCHES))),
                "length": int(rng.integers(len(LENGTHS)))}

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        keep_label, keep_caption = rng.random(2) < (self.label_fraction, self.caption_fraction)
        kind, pitch, length = (int(rng.integers(len(KINDS))), int(rng.integers(len(PITCHES))),
                               int(rng.integers(len(LENGTHS))))
        rate, total = self.sample_rate, int(round(self.duration * self.sample_rate))
        _, f_lo, f_hi = PITCHES[pitch]
        f0 = math.exp(rng.uniform(math.log(f_lo), math.log(f_hi)))
        n = int(rng.uniform(*LENGTHS[length][1:]) * rate)
        start = int(rng.integers(0, total - n + 1))
        event = _event(rng, kind, f0, n, rate)
        ramp = min(n // 2, int(0.01 * rate))  # 10 ms fades: no clicks at the edges
        env = np.ones(n)
        env[:ramp], env[n - ramp:] = np.linspace(0, 1, ramp), np.linspace(1, 0, ramp)
        wave = rng.standard_normal(total) * rng.uniform(0.002, 0.01)
        wave[start:start + n] += event * env * rng.uniform(0.2, 0.7)
        label = (kind * len(PITCHES) + pitch) * len(LENGTHS) + length
        return {
            "key": f"synthetic_audio/{self.split}/{self.seed}/{index:08d}",
            "audio": Audio(waveform=torch.from_numpy(np.clip(wave, -1, 1).astype(np.float32)), sample_rate=rate),
            "label": label if keep_label else None,
            "caption": caption_of(kind, pitch, length) if keep_caption else None,
            "image": None, "seg": None,
        }
