"""timm's VisionTransformer <-> our image tower (patch embedding [+ pre-norm part] + pre-norm transformer).

One key table, TIMM, read both ways: `to_timm_vit` (export: tensors + the VisionTransformer kwargs of the
same shape) and `from_timm` (import: a timm state dict -> canonical tensors, which tower.py places).
Our patch embedding adds positions before it prepends the CLS token, so the CLS position timm expects in
pos_embed is zero on export (and folded into our cls_token on import); a fixed sin-cos table is exported as
timm's (learned) pos_embed tensor. timm drops the patch bias when pre_norm is on: the bias then moves into
the position table's patch rows (exact).
"""
from __future__ import annotations

from typing import Dict, Set, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from .keys import BLOCK, entry, expand, count_layers, from_canonical, params, to_canonical
from .tower import fold_patch_bias, image_to_canonical

TIMM = ([entry("cls_token", "cls_token"), entry("pos_embed", "pos_embed")]
        + params("patch_embed.proj", "patch_embed.proj") + params("norm_pre", "norm_pre")
        + [e for part in BLOCK for e in params(f"blocks.{{i}}.{part}", f"blocks.{{i}}.{part}")]
        + params("norm", "norm"))

TIMM_ACT = {"gelu": None, "gelu_tanh": "gelu_tanh", "quick_gelu": "quick_gelu"}


def is_timm(keys) -> bool:
    return "patch_embed.proj.weight" in keys and any(k.startswith("blocks.0.attn.qkv") for k in keys)


def from_timm(sd: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, str], Set[str]]:
    """(canonical tensors, canonical -> timm name, timm names used)."""
    return to_canonical(sd, expand(TIMM, count_layers(sd, "blocks")))


def to_timm_vit(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(timm-named tensors, timm VisionTransformer kwargs) of model.embedding + model.encoder."""
    canon, spec = image_to_canonical(model)
    if abs(spec["eps"] - 1e-6) > 1e-12 or abs(spec.get("pre_norm_eps", 1e-6) - 1e-6) > 1e-12:
        raise ConfigError(f"export to timm: LayerNorm eps {spec['eps']} (timm's ViT uses 1e-6)")
    if spec["pre_norm"]:
        canon = fold_patch_bias(canon)
    kwargs = {"img_size": spec["image_size"], "patch_size": spec["patch_size"], "in_chans": spec["in_chans"],
              "embed_dim": spec["dim"], "depth": spec["depth"], "num_heads": spec["heads"],
              "mlp_ratio": spec["mlp_ratio"], "qkv_bias": spec["qkv_bias"], "class_token": spec["cls_token"],
              "global_pool": "token" if spec["cls_token"] else "avg", "num_classes": 0, "no_embed_class": False,
              "fc_norm": False, "pre_norm": spec["pre_norm"]}
    if TIMM_ACT[spec["act"]]:
        kwargs["act_layer"] = TIMM_ACT[spec["act"]]
    return from_canonical(canon, expand(TIMM, spec["depth"])), kwargs
