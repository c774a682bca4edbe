"""TencentPretrain checkpoint keys -> ours, for the "model" section convert_config (tencentpretrain.py) wrote.

Facts of TencentPretrain's layout used here:
- LayerNorm ("normal") computes gamma * (x - mean) / (std + eps) with the UNBIASED std; torch's LayerNorm
  divides by the biased one. Folding sqrt((N-1)/N) into gamma makes ours compute TencentPretrain's function
  (up to where eps sits, ~1e-6 relative), so converted models give TencentPretrain's outputs, not those of
  the model it may once have been converted from.
- Attention keeps q, k, v as self_attn.linear_layers.{0,1,2} (ours: one fused qkv, q|k|v rows); the
  decoder's context_attn applies linear_layers.0 to the decoder's stream and 1, 2 to the encoder's.
- The ViT patch projection has no bias; its position table covers [CLS] + patches, and ours adds positions
  to the patches only, so the CLS position is folded into our cls_token.
- Segment rows: 0 = padding, 1 / 2 = sentences A / B (ours: rows 0 / 1).
- Tied output layers (target.mlm.linear_2.weight, target.lm.output_layer.weight) are saved as copies of the
  word embedding; ours has one matrix, so a checkpoint whose copy differs is refused.
"""
import math
from typing import Dict, List, Tuple

import torch

from ..errors import ConfigError

_BLOCK = (("feed_forward.linear_1", "mlp.fc1"), ("feed_forward.linear_2", "mlp.fc2"))


class _Reader:
    """The checkpoint's tensors, with a record of which ones found a place."""

    def __init__(self, sd: Dict[str, torch.Tensor]):
        self.sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
        self.used: set = set()

    def has(self, key: str) -> bool:
        return key in self.sd

    def get(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise ConfigError(f"TencentPretrain checkpoint has no '{key}' (does it match the config?)")
        self.used.add(key)
        return self.sd[key]

    def linear(self, key: str) -> Dict[str, torch.Tensor]:
        return {"weight": self.get(f"{key}.weight"), "bias": self.get(f"{key}.bias")}

    def ln(self, key: str) -> Dict[str, torch.Tensor]:
        w = f"{key}.gamma" if self.has(f"{key}.gamma") else f"{key}.weight"
        b = f"{key}.beta" if self.has(f"{key}.beta") else f"{key}.bias"
        gamma = self.get(w)
        return {"weight": gamma * math.sqrt((gamma.numel() - 1) / gamma.numel()), "bias": self.get(b)}

    def left(self) -> List[str]:
        return sorted(set(self.sd) - self.used)


def _put(out: dict, prefix: str, tensors: Dict[str, torch.Tensor]) -> None:
    for k, v in tensors.items():
        out[f"{prefix}.{k}"] = v


def _cat(r: _Reader, key: str, idx, p: str) -> torch.Tensor:
    return torch.cat([r.get(f"{key}.linear_layers.{j}.{p}") for j in idx])


def _blocks(r: _Reader, out: dict, src: str, dst: str, layers: int, decoder: bool = False) -> None:
    for i in range(layers):
        s, d = f"{src}.{i}.", f"{dst}.{i}."
        for p in ("weight", "bias"):
            out[d + f"{'self_attn' if decoder else 'attn'}.qkv.{p}"] = _cat(r, s + "self_attn", (0, 1, 2), p)
            if decoder:
                out[d + f"cross_attn.q.{p}"] = r.get(s + f"context_attn.linear_layers.0.{p}")
                out[d + f"cross_attn.kv.{p}"] = _cat(r, s + "context_attn", (1, 2), p)
        _put(out, d + ("self_attn.proj" if decoder else "attn.proj"), r.linear(s + "self_attn.final_linear"))
        if decoder:
            _put(out, d + "cross_attn.proj", r.linear(s + "context_attn.final_linear"))
        for theirs, ours in _BLOCK:
            _put(out, d + ours, r.linear(s + theirs))
        for j in range(1, 4 if decoder else 3):
            _put(out, d + f"norm{j}", r.ln(s + f"layer_norm_{j}"))


def _encoder(r: _Reader, out: dict, src: str, dst: str, cfg: dict, decoder: bool = False) -> None:
    _blocks(r, out, f"{src}.{'transformer_decoder' if decoder else 'transformer'}",
            f"{dst}.blocks", cfg["layers"], decoder)
    if cfg.get("norm", "pre") == "pre" and cfg.get("final_norm", True):
        _put(out, f"{dst}.norm", r.ln(f"{src}.layer_norm"))


def _text_embedding(r: _Reader, out: dict, src: str, dst: str, cfg: dict) -> None:
    out[f"{dst}.word.weight"] = r.get(f"{src}.word.embedding.weight")
    if "position" in cfg:
        out[f"{dst}.position.weight"] = r.get(f"{src}.pos.embedding.weight")
    if "segment" in cfg:
        out[f"{dst}.segment.weight"] = r.get(f"{src}.seg.embedding.weight")[1:3]
    if "norm" in cfg:
        _put(out, f"{dst}.norm.norm", r.ln(f"{src}.layer_norm"))


def _patch(r: _Reader, out: dict, src: str, cfg: dict) -> None:
    w = r.get(f"{src}.patch.projection.weight")
    out["embedding.proj.weight"] = w
    bias = f"{src}.patch.projection.bias"  # TencentPretrain's projection has none; HF-converted files may
    out["embedding.proj.bias"] = r.get(bias) if r.has(bias) else torch.zeros(w.shape[0], dtype=w.dtype)
    n = (cfg["image_size"] // cfg["patch_size"]) ** 2
    pos = r.get(f"{src}.pos.embedding.weight")
    out["embedding.cls_token"] = r.get(f"{src}.patch.cls_emb").reshape(1, 1, -1) + pos[0]
    out["embedding.pos_embed"] = pos[1:n + 1].unsqueeze(0)


def _tied(r: _Reader, key: str, word: torch.Tensor) -> None:
    if r.has(key) and not torch.equal(r.get(key), word):
        raise ConfigError(f"'{key}' differs from the word embedding (tie_weights false / share_embedding "
                          f"false): our output layer is the word embedding itself")


def _identity_head(out: dict, name: str, n: int) -> None:
    out[f"objectives.{name}.target_embedding.weight"] = torch.eye(n)
    out[f"objectives.{name}.target_embedding.bias"] = torch.zeros(n)


def convert_state(sd: Dict[str, torch.Tensor], model: dict) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """(our tensors, TencentPretrain keys that found no place) for our `model` section."""
    r, out = _Reader(sd), {}
    objectives = model["objectives"]
    if "clip" in objectives:
        tower = objectives["clip"]["target_embedding"]
        t = "objectives.clip.target_embedding"
        _patch(r, out, "embedding.embedding_1", model["embedding"])
        _encoder(r, out, "encoder.encoder_1", "encoder", model["encoder"])
        _text_embedding(r, out, "embedding.embedding_0", f"{t}.embedding.parts", tower["embedding"])
        if "norm_2" in tower["embedding"]:
            _put(out, f"{t}.embedding.parts.norm_2.norm", r.ln("embedding.stream_0_layer_norm"))
        _encoder(r, out, "encoder.encoder_0", f"{t}.encoder", tower["encoder"])
        out[f"{t}.proj.weight"] = r.get("target.clr.encoder_0_projection").t()
        proj = r.get("target.clr.encoder_1_projection").t()
        out["objectives.clip.decoder.head.weight"] = proj
        out["objectives.clip.decoder.head.bias"] = torch.zeros(proj.shape[0], dtype=proj.dtype)
        out["objectives.clip.target.log_scale"] = r.get("target.clr.logit_scale").reshape(())
        return _contiguous(out), r.left()
    if model["embedding"].get("type") == "patch":
        _patch(r, out, "embedding", model["embedding"])
    else:
        _text_embedding(r, out, "embedding", "embedding.parts", model["embedding"])
    _encoder(r, out, "encoder", "encoder", model["encoder"])
    word = out.get("embedding.parts.word.weight")
    if "mlm" in objectives:
        _put(out, "objectives.mlm.decoder.dense", r.linear("target.mlm.linear_1"))
        _put(out, "objectives.mlm.decoder.norm", r.ln("target.mlm.layer_norm"))
        out["objectives.mlm.target_embedding.bias"] = r.get("target.mlm.linear_2.bias")
        _tied(r, "target.mlm.linear_2.weight", word)
    for name in ("sp", "sop", "nsp"):
        if "sop" in objectives and r.has(f"target.{name}.linear_1.weight"):
            _put(out, "objectives.sop.decoder.dense", r.linear(f"target.{name}.linear_1"))
            _put(out, "objectives.sop.decoder.out", r.linear(f"target.{name}.linear_2"))
            _identity_head(out, "sop", 2)
    if "cls" in objectives:
        _put(out, "objectives.cls.decoder.dense", r.linear("target.cls.linear_1"))
        _put(out, "objectives.cls.decoder.out", r.linear("target.cls.linear_2"))
        _identity_head(out, "cls", objectives["cls"]["target_embedding"]["num_classes"])
    if "lm" in objectives:
        lm = objectives["lm"]
        _tied(r, "target.lm.output_layer.weight", word)
        if lm["target_embedding"].get("bias", True):
            out["objectives.lm.target_embedding.bias"] = r.get("target.lm.output_layer.bias")
        dec = lm["decoder"]
        if dec["type"] == "seq2seq":
            _text_embedding(r, out, "tgt_embedding", "objectives.lm.decoder.embedding.parts", dec["input_embedding"])
            _encoder(r, out, "decoder", "objectives.lm.decoder", dict(dec, final_norm=True), decoder=True)
    return _contiguous(out), r.left()


def _contiguous(out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in out.items()}
