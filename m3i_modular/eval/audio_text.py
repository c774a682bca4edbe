"""Audio through the inference API: the recipe's audio view for evaluation, audio embeddings, zero-shot
classification and audio<->text retrieval R@K.

    model = m3i.load("runs/speech_text")
    a = model.encode_audio([(waveform, 16000), ...], objective="audio_text")     # (B, D)
    pred = zero_shot_classify(model, clips, ["a short low tone", ...], objective="audio_text")
    scores = audio_text_retrieval(model, clips, captions, objective="audio_text")  # {"a2t_r1": ..., ...}

Evaluation runs the recipe's own audio view with its random steps made deterministic: crops start at frame
0, maskers and SpecAugment are left out.
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.audio import Audio
from ..data.views.pipeline import apply_view, view_field
from ..errors import ConfigError, DataError
from ..interfaces import QUERY, needs_of
from ..registry import TRANSFORMS, build, config_path, nearest
from ..selectors.selection import select
from .retrieval import cosine_similarity, distinct_texts, paired_retrieval, zero_shot_predict

TRAIN_ONLY = ("specaugment",)


def audio_view_name(cfg: dict) -> str:
    views = cfg.get("views") or {}
    audio = [n for n, steps in views.items() if isinstance(steps, list) and steps and isinstance(steps[0], dict)
             and getattr(TRANSFORMS.get(steps[0].get("type", "")), "reads", "image") == "audio"]
    if not audio:
        raise ConfigError("the recipe has no audio view (a view starting with an audio transform such as "
                          "'fbank' or 'resample'): encode_audio needs an audio recipe")
    return audio[0]


def audio_eval_steps(cfg: dict, view: Optional[str] = None) -> list:
    """The recipe's audio view for evaluation: no masker, no SpecAugment, crops from the start."""
    name = view or audio_view_name(cfg)
    steps = (cfg.get("views") or {}).get(name)
    if steps is None:
        raise ConfigError(f"no view '{name}' in the recipe{nearest(name, cfg.get('views') or {})}")
    spec = []
    for step in steps:
        cls = TRANSFORMS.get(step["type"])
        if getattr(cls, "masker", False) or step["type"] in TRAIN_ONLY:
            continue
        if step["type"] == "crop_frames":
            step = {**step, "random": False}
        spec.append(step)
    with config_path(f"views.{name}", absolute=True):
        built = [build(TRANSFORMS, s, key=i) for i, s in enumerate(spec)]
    if view_field(built) != "audio":
        raise ConfigError(f"view '{name}' is not an audio view")
    return built


def _to_audio(clip: Any) -> Audio:
    if isinstance(clip, Audio):
        return clip
    if isinstance(clip, (tuple, list)) and len(clip) == 2:
        wave, rate = clip
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32) if not torch.is_tensor(wave) else wave).float()
        if wave.ndim == 2:  # (channels, N) -> mono
            wave = wave.mean(0)
        if wave.ndim != 1 or wave.numel() == 0:
            raise DataError(f"expected a non-empty mono waveform (N,) or (C, N), got shape {tuple(wave.shape)}")
        return Audio(waveform=wave, sample_rate=int(rate))
    raise DataError(f"cannot read audio from {type(clip).__name__}: pass Audio objects or (waveform, sample_rate)")


def preprocess_audio(clips: Sequence[Any], steps: Sequence[Any]) -> torch.Tensor:
    """Clips (Audio or (waveform, sample_rate)) -> features (B, T, n_mels) through the eval steps."""
    if not len(clips):
        raise DataError("no audio clips given")
    g = torch.Generator().manual_seed(0)
    feats = [apply_view(steps, _to_audio(c), g).tensor() for c in clips]
    if len({tuple(f.shape) for f in feats}) > 1:
        raise DataError("clips give different frame counts: the recipe's audio view needs a 'crop_frames' step")
    return torch.stack(feats)


@torch.no_grad()
def encode_audio(pretrained: Any, clips: Sequence[Any], objective: Optional[str] = None,
                 batch_size: int = 64) -> torch.Tensor:
    """(B, D): the mean of the last layer's tokens, or with `objective` that objective's pooling decoder."""
    model = pretrained.model
    steps = audio_eval_steps(pretrained.cfg)
    decoder = None
    if objective is not None:
        if objective not in model.objectives:
            raise ConfigError(f"no objective '{objective}' in this model{nearest(objective, model.objectives)}")
        decoder = model.objectives[objective].decoder
        if QUERY in needs_of(decoder):
            raise ConfigError(f"objective '{objective}' has a per-token predictor, not a projector")
    out = []
    for i in range(0, len(clips), batch_size):
        x = preprocess_audio(clips[i:i + batch_size], steps).to(pretrained.device)
        batch = {"views": {"input": x}}
        enc = model.encode(batch, "input")
        sel = select(enc, "all", batch)
        out.append(decoder(sel) if decoder is not None else sel.z[:, sel.prefix:].mean(1))
    return torch.cat(out)


def _similarity(pretrained, clips, texts, objective, tower) -> torch.Tensor:
    a = encode_audio(pretrained, clips, objective)
    t = pretrained.encode_text(list(texts), tower=tower)
    return cosine_similarity(a, t)


def zero_shot_classify(pretrained: Any, clips: Sequence[Any], class_texts: Sequence[str], *,
                       objective: Optional[str] = None, tower: Optional[str] = None) -> Tuple[torch.Tensor,
                                                                                            torch.Tensor]:
    """Each clip's class = the class text its embedding is most similar to. Returns (pred (B,), sim (B, C))."""
    a = encode_audio(pretrained, clips, objective)
    return zero_shot_predict(a, pretrained.encode_text(list(class_texts), tower=tower))


def audio_text_retrieval(pretrained: Any, clips: Sequence[Any], captions: Sequence[str], *,
                         objective: Optional[str] = None, tower: Optional[str] = None,
                         ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """R@K both ways over paired (clip, caption) lists (eval/retrieval.py: identical captions are one
    candidate, and any clip with that caption is a hit)."""
    if len(clips) != len(captions):
        raise DataError(f"{len(clips)} clips but {len(captions)} captions: retrieval needs pairs")
    distinct, which = distinct_texts(captions)
    sim = _similarity(pretrained, clips, distinct, objective, tower)
    return paired_retrieval(sim, which, ks, names=("a2t", "t2a"))
