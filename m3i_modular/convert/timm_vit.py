"""The online tower of a ViT recipe (patch embedding + pre-norm transformer) as a timm VisionTransformer
state dict, plus the constructor arguments that give timm the same shape.

Our patch embedding adds positions before it prepends the CLS token, so the CLS position timm expects in
pos_embed is zero; a fixed sin-cos table is exported as timm's (learned) pos_embed tensor.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from ..embeddings.patch import PatchEmbedding
from ..encoders.transformer import TransformerEncoder
from ..errors import ConfigError

_BLOCK_PARTS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                "mlp.fc2.weight", "mlp.fc2.bias")


def _check(embedding: nn.Module, encoder: nn.Module) -> None:
    if not isinstance(embedding, PatchEmbedding):
        raise ConfigError(f"export to timm needs a 'patch' embedding, this model has {type(embedding).__name__}")
    if embedding.pos_embed is None:
        raise ConfigError("export to timm needs position embeddings: the patch embedding has pos 'none'")
    if not isinstance(encoder, TransformerEncoder):
        raise ConfigError(f"export to timm needs a 'transformer' encoder, this model has {type(encoder).__name__}")
    if not encoder.blocks or not encoder.blocks[0].pre or isinstance(encoder.norm, nn.Identity):
        raise ConfigError("export to timm needs a pre-norm transformer with its final norm "
                          "(model.encoder.norm \"pre\", final_norm true)")
    if encoder.causal:
        raise ConfigError("export to timm needs a bidirectional encoder (model.encoder.causal false)")


def timm_vit_kwargs(embedding: PatchEmbedding, encoder: TransformerEncoder) -> dict:
    """VisionTransformer(**kwargs) of the same shape, without a classifier head."""
    blk = encoder.blocks[0]
    dim = encoder.dim
    return {"img_size": embedding.grid[0] * embedding.patch_size, "patch_size": embedding.patch_size,
            "in_chans": embedding.proj.in_channels, "embed_dim": dim, "depth": len(encoder.blocks),
            "num_heads": blk.attn.heads, "mlp_ratio": blk.mlp.fc1.out_features / dim,
            "qkv_bias": blk.attn.qkv.bias is not None, "class_token": embedding.cls_token is not None,
            "global_pool": "token" if embedding.cls_token is not None else "avg", "num_classes": 0,
            "no_embed_class": False, "fc_norm": False}


def to_timm_vit(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(timm-named tensors, timm VisionTransformer kwargs) of model.embedding + model.encoder."""
    emb, enc = model.embedding, model.encoder
    _check(emb, enc)
    out: Dict[str, torch.Tensor] = {"patch_embed.proj.weight": emb.proj.weight,
                                    "patch_embed.proj.bias": emb.proj.bias}
    pos = emb.pos_embed.detach().to(emb.proj.weight.dtype)
    if emb.cls_token is not None:
        out["cls_token"] = emb.cls_token
        pos = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)  # our CLS token carries no position
    out["pos_embed"] = pos
    for i, blk in enumerate(enc.blocks):
        state = blk.state_dict()
        for part in _BLOCK_PARTS:
            if part in state:
                out[f"blocks.{i}.{part}"] = state[part]
    out["norm.weight"], out["norm.bias"] = enc.norm.weight, enc.norm.bias
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}, timm_vit_kwargs(emb, enc)
