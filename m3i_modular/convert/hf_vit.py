"""Hugging Face ViT directory (config.json + model.safetensors, ViTModel layout) <-> our image tower.

One key table, HF_VIT, read both ways: `from_hf_vit` (import: a directory -> canonical tensors, placed by
tower.py), `model_section` (our "model" section of the directory's shape), `to_hf_vit` (export: an image
tower -> a new directory ViTModel.from_pretrained loads). HF's ViTModel always prepends a CLS token, so a
CLS-less tower cannot be exported exactly (use --format timm); its pooler (dense + tanh on CLS) has no
counterpart in a tower and is left out both ways. q, k, v are separate Linears there (our fused qkv: rows
q|k|v).
"""
import json
import os
from typing import Dict, Set, Tuple

import torch
from torch import nn

from ..runtime.atomic import new_output_dir
from ..errors import ConfigError
from .keys import count_layers, entry, expand, from_canonical, params, to_canonical
from .tower import image_to_canonical

_L = "encoder.layer.{i}"
HF_VIT = ([entry("embeddings.cls_token", "cls_token"), entry("embeddings.position_embeddings", "pos_embed")]
          + params("embeddings.patch_embeddings.projection", "patch_embed.proj")
          + [entry(tuple(f"{_L}.attention.attention.{n}.{p}" for n in ("query", "key", "value")),
                   f"blocks.{{i}}.attn.qkv.{p}", "cat") for p in ("weight", "bias")]
          + params(f"{_L}.attention.output.dense", "blocks.{i}.attn.proj")
          + params(f"{_L}.layernorm_before", "blocks.{i}.norm1") + params(f"{_L}.layernorm_after", "blocks.{i}.norm2")
          + params(f"{_L}.intermediate.dense", "blocks.{i}.mlp.fc1")
          + params(f"{_L}.output.dense", "blocks.{i}.mlp.fc2")
          + params("layernorm", "norm"))
HF_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "quick_gelu": "quick_gelu"}
_OURS_ACT = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "quick_gelu": "quick_gelu"}


def is_hf_vit_keys(keys) -> bool:
    return any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in keys)


def read_hf_dir(hf_dir: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """(config.json, tensors) of a Hugging Face model directory."""
    try:
        with open(os.path.join(hf_dir, "config.json")) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{hf_dir}/config.json: cannot read ({e})") from None
    st, binf = os.path.join(hf_dir, "model.safetensors"), os.path.join(hf_dir, "pytorch_model.bin")
    if os.path.isfile(st):
        from safetensors.torch import load_file
        return cfg, load_file(st)
    if os.path.isfile(binf):
        return cfg, torch.load(binf, map_location="cpu", weights_only=True)
    raise ConfigError(f"{hf_dir}: no model.safetensors or pytorch_model.bin")


def from_hf_vit(sd: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, str], Set[str]]:
    """(canonical tensors, canonical -> HF name, HF names used); ViTForImageClassification's 'vit.' prefix
    is dropped first (its classifier is left out)."""
    theirs = {k[4:] if k.startswith("vit.") else k: k for k in sd}
    canon, origin, used = to_canonical({k: sd[v] for k, v in theirs.items()},
                                       expand(HF_VIT, count_layers(theirs, "encoder.layer")))
    return canon, {c: theirs[n] for c, n in origin.items()}, {theirs[n] for n in used}


def model_section(cfg: dict, num_classes: int = 1000) -> dict:
    """Our "model" section of a HF ViT config's shape (a supervised head on CLS: replace it at will)."""
    act = cfg.get("hidden_act", "gelu")
    if act not in _OURS_ACT:
        raise ConfigError(f"HF ViT hidden_act '{act}' has no counterpart (ours: {', '.join(_OURS_ACT)})")
    dim, size, patch = cfg.get("hidden_size", 768), cfg.get("image_size", 224), cfg.get("patch_size", 16)
    if not isinstance(size, int) or not isinstance(patch, int):
        raise ConfigError("HF ViT with non-square image_size / patch_size has no counterpart")
    emb = {"type": "patch", "image_size": size, "patch_size": patch, "dim": dim, "pos": "learned", "cls_token": True}
    if cfg.get("num_channels", 3) != 3:
        emb["in_chans"] = cfg["num_channels"]
    enc = {"type": "transformer", "layers": cfg.get("num_hidden_layers", 12),
           "heads": cfg.get("num_attention_heads", 12), "dim": dim,
           "mlp_ratio": cfg.get("intermediate_size", 3072) / dim, "norm": "pre",
           "eps": cfg.get("layer_norm_eps", 1e-12), "qkv_bias": cfg.get("qkv_bias", True)}
    if _OURS_ACT[act] != "gelu":
        enc["act"] = _OURS_ACT[act]
    return {"embedding": emb, "encoder": enc, "objectives": {"category": {
        "input": "view1", "target_view": "label",
        "target_embedding": {"type": "category", "num_classes": num_classes, "dim": dim},
        "decoder": {"type": "pool", "pool": "cls", "head": "none"}, "target": {"type": "boltzmann"}}}}


def to_hf_vit(model: nn.Module, out_dir: str) -> dict:
    """Write a new HF ViT directory (config.json + model.safetensors) of model's image tower; return config."""
    from safetensors.torch import save_file
    canon, spec = image_to_canonical(model)
    if not spec["cls_token"]:
        raise ConfigError("export to a Hugging Face ViT: ViTModel always prepends a CLS token that every patch "
                          "attends to, and this tower has none (cls_token false): use --format timm")
    if spec["pre_norm"]:
        raise ConfigError("export to a Hugging Face ViT: a LayerNorm after the patch embedding (pre-norm part) "
                          "has no counterpart in ViTModel")
    if spec["image_size"] % spec["patch_size"]:
        raise ConfigError("image_size is not a multiple of patch_size")
    cfg = {"architectures": ["ViTModel"], "model_type": "vit", "hidden_size": spec["dim"],
           "num_hidden_layers": spec["depth"], "num_attention_heads": spec["heads"],
           "intermediate_size": int(round(spec["dim"] * spec["mlp_ratio"])), "hidden_act": HF_ACT[spec["act"]],
           "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": spec["eps"],
           "image_size": spec["image_size"], "patch_size": spec["patch_size"], "num_channels": spec["in_chans"],
           "qkv_bias": spec["qkv_bias"], "encoder_stride": spec["patch_size"]}
    tensors = from_canonical(canon, expand(HF_VIT, spec["depth"]))
    with new_output_dir(out_dir) as tmp:
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
    return cfg
