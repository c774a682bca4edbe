"""Inference API: rebuild a trained model from its checkpoint and encode images and text.

    import m3i_modular as m3i
    model = m3i.load("runs/mae_vit")              # a run directory or one checkpoints/step_* directory
    feats = model.encode_image([pil_image])        # (B, D) mean-pooled last layer
    tokens = model.forward_features(uint8_batch)   # (B, N, D)

The model is rebuilt from the checkpoint's own config.json (so it needs no recipe file), its weights load
with weights_only=True, and the tokenizer comes from the checkpoint's tokenizer/ directory when present.
"""
import os
from typing import Any, List, Optional

import torch

from .training import checkpoint as ckpt
from .recipe.config import apply_set, import_plugins
from .errors import ConfigError, DataError
from .interfaces import QUERY, needs_of
from .eval.features import mean_pooled
from .eval.transform import eval_transform, preprocess
from .recipe.model import PretrainModel, build_model
from .registry import nearest
from .selectors.selection import select


class Pretrained:
    """A PretrainModel in eval mode with its recipe, tokenizer and evaluation preprocessing."""

    def __init__(self, model: PretrainModel, cfg: dict, *, tokenizer: Any = None, device: Any = "cpu",
                 crop_pct: float = 1.0):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.cfg, self.tokenizer = cfg, tokenizer
        if not 0.0 < crop_pct <= 1.0:
            raise ConfigError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self._crop_pct, self._transform = crop_pct, None

    @property
    def transform(self):
        """The image eval transform, built on first use (an audio-only recipe has none)."""
        if self._transform is None:
            self._transform = eval_transform(self.cfg, crop_pct=self._crop_pct)
        return self._transform

    @classmethod
    def from_config(cls, cfg: dict, *, device: Any = "cpu", **kwargs) -> "Pretrained":
        """A randomly initialised model of a recipe (the baseline every evaluation should beat)."""
        seed = (cfg.get("train") or {}).get("seed", 0)
        return cls(build_model(cfg["model"], cfg.get("shared"), seed=seed), cfg, device=device, **kwargs)

    # -- images -----------------------------------------------------------------------------------------
    def preprocess(self, images: Any) -> torch.Tensor:
        """PIL image(s) or uint8 tensor(s) -> the float batch the model reads (eval view of the recipe)."""
        return preprocess(images, self.transform)

    def _batch(self, images: Any) -> torch.Tensor:
        if torch.is_tensor(images) and images.is_floating_point():
            if images.ndim != 4:
                raise DataError(f"a float input must be a preprocessed (B, 3, H, W) batch, got "
                                f"{tuple(images.shape)}")
            return images.to(self.device)
        return self.preprocess(images).to(self.device)

    @torch.no_grad()
    def forward_features(self, images: Any) -> torch.Tensor:
        """Last-layer tokens (B, N, D), prefix tokens (CLS) included."""
        return self.model.forward_features(self._batch(images))

    @torch.no_grad()
    def encode_image(self, images: Any, objective: Optional[str] = None) -> torch.Tensor:
        """(B, D): the mean of the last layer's grid tokens, or with `objective` the output of that
        objective's pooling decoder (its projector, e.g. the embedding a CLIP-style loss compares)."""
        x = self._batch(images)
        if objective is None:
            return mean_pooled(self.model, x)
        objs = self.model.objectives
        if objective not in objs:
            raise ConfigError(f"no objective '{objective}' in this model{nearest(objective, objs)}")
        decoder = objs[objective].decoder
        if QUERY in needs_of(decoder):
            raise ConfigError(f"objective '{objective}' has a per-token predictor, not a projector: "
                              f"encode_image takes an objective with a pooling decoder")
        batch = {"views": {"input": x}}
        return decoder(select(self.model.encode(batch, "input"), "all", batch))

    # -- audio ------------------------------------------------------------------------------------------
    def encode_audio(self, clips: Any, objective: Optional[str] = None) -> torch.Tensor:
        """(B, D) from Audio objects or (waveform, sample_rate) pairs, through the recipe's audio view
        (eval/audio_text.py: also zero-shot classification and audio<->text retrieval)."""
        from .eval.audio_text import encode_audio
        return encode_audio(self, clips, objective)

    # -- text -------------------------------------------------------------------------------------------
    def text_tower(self, name: Optional[str] = None) -> torch.nn.Module:
        """The model's `text_tower` target embedding (shared or an objective's), by its name if several."""
        towers = {}
        for key, m in self.model.shared.items():
            if getattr(m, "registry_name", None) == "text_tower":
                towers[key] = m
        for key, obj in self.model.objectives.items():
            te = obj.target_embedding
            if getattr(te, "registry_name", None) == "text_tower" and all(t is not te for t in towers.values()):
                towers[key] = te
        if not towers:
            raise ConfigError("this model has no text tower (a 'text_tower' target embedding): encode_text "
                              "needs an image-text recipe")
        if name is None:
            if len(towers) > 1:
                raise ConfigError(f"the model has several text towers ({', '.join(towers)}): pass one by name")
            return next(iter(towers.values()))
        if name not in towers:
            raise ConfigError(f"no text tower '{name}'{nearest(name, towers)}")
        return towers[name]

    def tokenize(self, texts: List[str]) -> torch.Tensor:
        from .data.views.pipeline import encode_text
        if self.tokenizer is None:
            raise ConfigError("no tokenizer: the checkpoint has no tokenizer/ directory")
        if isinstance(texts, str):
            texts = [texts]
        length = (self.cfg.get("data") or {}).get("text_length", 32)
        return torch.stack([encode_text(t, self.tokenizer, length) for t in texts]).to(self.device)

    @torch.no_grad()
    def encode_text(self, texts: List[str], tower: Optional[str] = None) -> torch.Tensor:
        """(B, D) text embeddings from the text tower. A tower may offer `encode_text(ids)`; otherwise it is
        called as a target embedding on {"text": ids} and its per-sample value (or candidates) returned."""
        module = self.text_tower(tower)
        ids = self.tokenize(texts)
        if hasattr(module, "encode_text"):
            return module.encode_text(ids)
        present = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
        out = module({"text": ids, "present": {"text": present}}, view="text")
        return out.value if out.value is not None else out.candidates


def load(checkpoint_dir: str, *, device: Any = "cpu", crop_pct: float = 1.0,
         overrides: Optional[List[str]] = None) -> Pretrained:
    """Rebuild the model of a checkpoint (a step_* directory, or a run directory naming its latest).
    `overrides` are --set style "key=value" changes to the checkpoint's recipe (its data, views or eval
    settings; a changed model no longer matches the saved weights, and loading says so)."""
    path = ckpt.resolve_checkpoint(checkpoint_dir)
    try:
        cfg = ckpt.load_config_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"checkpoint '{path}' has no readable config.json ({e})") from None
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ConfigError(f"checkpoint '{path}': config.json has no 'model' section")
    for assignment in overrides or []:
        apply_set(cfg, assignment)
    import_plugins(cfg.get("imports", []), file=os.path.join(path, "config.json"))
    seed = (cfg.get("train") or {}).get("seed", 0)
    model = build_model(cfg["model"], cfg.get("shared"), seed=seed)
    state = ckpt.load_tensors(path, "model")
    why = "was the model changed by --set?" if overrides else "was a plugin changed since it was saved?"
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape mismatch
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e)[:200])
        raise ConfigError(f"checkpoint '{path}' does not match its config: {first} ({why})") from None
    if missing or unexpected:
        raise ConfigError(f"checkpoint '{path}' does not match its config: missing {list(missing)[:5]}, "
                          f"unexpected {list(unexpected)[:5]} ({why})")
    tokenizer = None
    tok_dir = os.path.join(path, "tokenizer")
    if os.path.isdir(tok_dir):
        from .data.tokenizers import tokenizer_from_dir
        tokenizer = tokenizer_from_dir(tok_dir)
    return Pretrained(model, cfg, tokenizer=tokenizer, device=device, crop_pct=crop_pct)
