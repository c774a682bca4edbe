"""open_clip's CLIP (native ViT image tower + text transformer) <-> a clip_vit-shaped model of ours.

One key table, OPEN_CLIP, read both ways. Import: `from_open_clip(sd)` gives canonical tensors that
tower.py places in any model with an image tower and (optionally) a text_tower objective -- clip_vit- or
m3i_vit-shaped; `model_section(cfg)` writes our "model" section of the same shape as an open_clip model
config, so every tensor finds its place. Export: `to_open_clip(model)` gives the state dict and the model
config; open_clip.create_model("local-dir:DIR") loads the pair written by scripts/export.py.

Facts used: open_clip's conv1 has no bias (ours moves the patch bias into the position table's patch rows)
and its image projection `proj` has none either: our head's bias b moves into ln_post's bias as c with
W c = b (exact for the pooled features when W has full row rank, the usual E <= D; the token outputs then
differ by c). Its ViT always prepends a class token (a CLS-less tower cannot be expressed: use --format
timm). Text pooling: ours takes the last non-padding token (the EOS our data pipeline always keeps); open_clip
pools "eos" (first eos_id) when the tokenizer's EOS id is known, else "argmax" (its own tokenizer's EOT is the
largest id). nn.MultiheadAttention's in_proj is q|k|v row blocks like our fused qkv.
"""
import math
from typing import Dict, Optional, Set, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from .keys import count_layers, entry, expand, from_canonical, params, to_canonical
from .tower import clip_to_canonical, fold_patch_bias, layout

_RES = (("ln_1", "norm1"), ("ln_2", "norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"),
        ("attn.out_proj", "attn.proj"))


def _blocks(theirs: str, canon: str, idx: str):
    out = [entry(f"{theirs}.{idx}.attn.in_proj_weight", f"{canon}.{idx}.attn.qkv.weight"),
           entry(f"{theirs}.{idx}.attn.in_proj_bias", f"{canon}.{idx}.attn.qkv.bias")]
    for t, c in _RES:
        out += params(f"{theirs}.{idx}.{t}", f"{canon}.{idx}.{c}")
    return out


OPEN_CLIP = ([entry("visual.conv1.weight", "patch_embed.proj.weight"),
              entry("visual.class_embedding", "cls_token", "cls"),
              entry("visual.positional_embedding", "pos_embed", "pos")]
             + params("visual.ln_pre", "norm_pre") + _blocks("visual.transformer.resblocks", "blocks", "{i}")
             + params("visual.ln_post", "norm") + [entry("visual.proj", "head.weight", "t"),
                                                   entry("token_embedding.weight", "text.token_embedding.weight"),
                                                   entry("positional_embedding", "text.positional_embedding")]
             + _blocks("transformer.resblocks", "text.blocks", "{t}") + params("ln_final", "text.norm")
             + [entry("text_projection", "text.proj.weight", "t"), entry("logit_scale", "logit_scale")])


def is_open_clip(keys) -> bool:
    return "visual.conv1.weight" in keys or "visual.class_embedding" in keys


def from_open_clip(sd: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, str], Set[str]]:
    """(canonical tensors, canonical -> open_clip name, open_clip names used). CustomTextCLIP keeps its text
    tower under 'text.' (projection: text.text_projection); CLIP at the top level."""
    custom = "text.token_embedding.weight" in sd
    theirs = {(k[5:] if custom and k.startswith("text.") else k): k for k in sd}
    table = expand(OPEN_CLIP, count_layers(theirs, "visual.transformer.resblocks"),
                   count_layers(theirs, "transformer.resblocks"))
    canon, origin, used = to_canonical({k: sd[v] for k, v in theirs.items()}, table)
    return canon, {c: theirs[n] for c, n in origin.items()}, {theirs[n] for n in used}


def _act(spec: dict) -> Tuple[bool, Optional[dict]]:
    if spec["act"] == "quick_gelu":
        return True, None
    return False, ({"approximate": "tanh"} if spec["act"] == "gelu_tanh" else None)


def _fold_head_bias(canon: Dict[str, torch.Tensor]) -> None:
    """W (ln_post(x)) + b == W (ln_post(x) + c) with W c = b: the bias moves into ln_post's bias."""
    w, b = canon.pop("head.weight").double(), canon.pop("head.bias").double()
    c = torch.linalg.lstsq(w, b.unsqueeze(1)).solution.squeeze(1)
    if float((w @ c - b).abs().max()) > 1e-5 * (1.0 + float(b.abs().max())):
        raise ConfigError("export to open_clip: the image head's bias is not in the span of its weight "
                          "(open_clip's image projection has no bias)")
    canon["norm.bias"] = (canon["norm.bias"].double() + c).float()
    canon["head.weight"] = w.float()


def to_open_clip(model: nn.Module, *, eos_id: Optional[int] = None,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(open_clip state dict, open_clip_config.json content: {"model_cfg", "preprocess_cfg"})."""
    canon, spec = clip_to_canonical(model)
    text = spec["text"]
    if not spec["cls_token"]:
        raise ConfigError("export to open_clip: its VisionTransformer always prepends a class token that every "
                          "patch attends to, and this tower has none (cls_token false): use --format timm, or "
                          "train with the patch embedding's cls_token true")
    if spec["in_chans"] != 3 or not spec["qkv_bias"] or not text["qkv_bias"]:
        raise ConfigError("export to open_clip needs 3 input channels and qkv biases")
    if spec.get("pre_norm_eps", spec["eps"]) != spec["eps"]:
        raise ConfigError("export to open_clip: the pre-norm and the blocks use different LayerNorm eps")
    if not text["causal"]:
        raise ConfigError("export to open_clip: a bidirectional text tower (causal false) has no counterpart")
    (q_img, act_img), (q_txt, act_txt) = _act(spec), _act(text)
    if q_img != q_txt:
        raise ConfigError("export to open_clip: quick_gelu in one tower only (open_clip sets it for both)")
    if "logit_scale" not in canon:
        scale = getattr(model.objectives[layout(model).clip].target, "log_scale", None)
        canon["logit_scale"] = (scale.detach().float() if torch.is_tensor(scale)
                                else torch.tensor(math.log(1 / 0.07)))
    canon["logit_scale"] = canon["logit_scale"].reshape(())
    canon = fold_patch_bias(canon)
    _fold_head_bias(canon)
    pool = {"eos": "eos" if eos_id is not None else "argmax", "first": "first"}.get(text["pool"])
    if pool is None:
        raise ConfigError(f"export to open_clip: text pool '{text['pool']}' has no counterpart")
    vision = {"image_size": spec["image_size"], "patch_size": spec["patch_size"], "width": spec["dim"],
              "layers": spec["depth"], "head_width": spec["dim"] // spec["heads"], "mlp_ratio": spec["mlp_ratio"],
              "pool_type": "tok" if spec["pool"] == "cls" else "avg", "no_ln_pre": not spec["pre_norm"],
              "norm_kwargs": {"eps": spec["eps"]}}
    txt = {"context_length": text["context_length"], "vocab_size": text["vocab_size"], "width": text["dim"],
           "heads": text["heads"], "layers": text["depth"], "mlp_ratio": text["mlp_ratio"], "pool_type": pool,
           "norm_kwargs": {"eps": text["eps"]}}
    if eos_id is not None:
        txt["eos_id"] = int(eos_id)
    if text["pad_id"] >= 0:
        txt["pad_id"] = int(text["pad_id"])
    if act_img:
        vision["act_kwargs"] = act_img
    if act_txt:
        txt["act_kwargs"] = act_txt
    model_cfg = {"embed_dim": spec["embed_dim"], "quick_gelu": q_img, "vision_cfg": vision, "text_cfg": txt}
    table = expand(OPEN_CLIP, spec["depth"], text["depth"])
    return from_canonical(canon, table), {"model_cfg": model_cfg, "preprocess_cfg": {
        "mean": list(mean), "std": list(std), "interpolation": "bicubic", "resize_mode": "shortest"}}


def model_section(cfg: dict, *, temperature_learnable: bool = True) -> dict:
    """Our "model" section of an open_clip model config's shape (native ViT + text transformer), so that
    every tensor of its checkpoint finds its place (image pre-norm: a layer_norm part after the patch part)."""
    if "model_cfg" in cfg:
        cfg = cfg["model_cfg"]
    v, t, e = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {}), cfg["embed_dim"]
    for key in ("timm_model_name", "hf_model_name"):
        if v.get(key) or t.get(key):
            raise ConfigError(f"open_clip config with {key}: only the native ViT and text transformer convert")
    for key, ok in (("ls_init_value", None), ("attentional_pool", False), ("final_ln_after_pool", False),
                    ("embed_cls", False), ("no_causal_mask", False), ("proj_bias", False)):
        if v.get(key, ok) != ok or t.get(key, ok) != ok:
            raise ConfigError(f"open_clip config with {key}={v.get(key, t.get(key))!r} has no counterpart")
    if t.get("pool_type", "argmax") not in ("argmax", "eos", "first"):
        raise ConfigError(f"open_clip text pool_type '{t['pool_type']}' has no counterpart (ours: argmax / eos "
                          f"-> the last non-padding token, first)")
    if isinstance(v.get("layers", 12), (list, tuple)):
        raise ConfigError("open_clip config with a ResNet image tower has no counterpart")
    act = "quick_gelu" if cfg.get("quick_gelu") else "gelu"
    eps = lambda c: (c.get("norm_kwargs") or {}).get("eps", 1e-5)  # noqa: E731  (open_clip's LayerNorm default)
    tact = lambda c: "gelu_tanh" if (c.get("act_kwargs") or {}).get("approximate") == "tanh" else act  # noqa: E731
    width, size, patch = v.get("width", 768), v.get("image_size", 224), v.get("patch_size", 16)
    emb = {"type": "patch", "image_size": size, "patch_size": patch, "dim": width, "pos": "learned",
           "cls_token": True}
    if not v.get("no_ln_pre", False):
        emb = {"patch": emb, "norm": {"type": "layer_norm", "dim": width, "eps": eps(v)}}
    tw = t.get("width", 512)
    tower = {"type": "text_tower", "dim": e, "pool": "first" if t.get("pool_type") == "first" else "eos",
             "embedding": {"word": {"type": "word", "vocab_size": t.get("vocab_size", 49408), "dim": tw,
                                    "pad_id": t.get("pad_id", 0)},
                           "position": {"type": "position", "max_length": t.get("context_length", 77), "dim": tw}},
             "encoder": {"type": "transformer", "layers": t.get("layers", 12), "heads": t.get("heads", 8), "dim": tw,
                         "mlp_ratio": t.get("mlp_ratio", 4.0), "causal": True, "eps": eps(t), "act": tact(t)}}
    return {"embedding": emb,
            "encoder": {"type": "transformer", "layers": v.get("layers", 12),
                        "heads": width // v.get("head_width", 64), "dim": width, "mlp_ratio": v.get("mlp_ratio", 4.0),
                        "norm": "pre", "eps": eps(v), "act": tact(v)},
            "objectives": {"clip": {
                "input": "view1", "target_view": "text", "target_embedding": tower,
                "decoder": {"type": "pool", "pool": "cls" if v.get("pool_type", "tok") == "tok" else "mean",
                            "head": "linear"},
                "target": {"type": "infonce", "temperature": 0.07, "learn_temperature": temperature_learnable,
                           "max_logit_scale": 100.0, "negatives": "batch", "symmetric": True}}}}
