"""Where our model keeps a ViT image tower, a CLIP text tower and their projection, in canonical names
(keys.py): canonical -> our state-dict keys for import, our model -> canonical + its shape ("spec") for
export. One place for both directions, so every format's key table only names its own side.

Image tower: a "patch" embedding (or named parts: a patch part, then optionally one "layer_norm" part =
CLIP's ln_pre / timm's norm_pre) + a pre-norm "transformer" encoder with its final norm. Ours adds positions
to the patches only and prepends a CLS token without one, so the canonical CLS position is folded into our
cls_token on import and written as zeros on export. Projection and text tower: the first objective whose
target embedding is a text_tower; its "pool" decoder's linear head is the image projection, its infonce
target's log_scale the logit scale.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Set, Tuple

import torch
from torch import nn

from ..decoders.pool import PoolDecoder
from ..embeddings.compose import ComposedEmbedding
from ..embeddings.norm import EmbeddingNorm
from ..embeddings.patch import PatchEmbedding
from ..embeddings.text import PositionEmbedding, WordEmbedding
from ..encoders.transformer import TransformerEncoder
from ..errors import ConfigError
from ..layers.mlp import QuickGELU
from ..target_embeddings.text_tower import TextTower


@dataclass
class Layout:
    patch: Optional[PatchEmbedding] = None
    patch_at: str = "embedding"
    pre_norm_at: Optional[str] = None
    extra_parts: Tuple[str, ...] = ()
    encoder: Optional[TransformerEncoder] = None
    clip: Optional[str] = None            # the objective with the text tower
    head: Optional[PoolDecoder] = None
    text: Optional[TextTower] = None
    scale: bool = False


def layout(model: nn.Module) -> Layout:
    out = Layout()
    emb = model.embedding
    if isinstance(emb, PatchEmbedding):
        out.patch = emb
    elif isinstance(emb, ComposedEmbedding):
        names = list(emb.parts)
        if isinstance(emb.parts[names[0]], PatchEmbedding):
            out.patch, out.patch_at = emb.parts[names[0]], f"embedding.parts.{names[0]}"
            rest = names[1:]
            if rest and isinstance(emb.parts[rest[0]], EmbeddingNorm):
                out.pre_norm_at, rest = f"embedding.parts.{rest[0]}.norm", rest[1:]
            out.extra_parts = tuple(rest)
    if isinstance(model.encoder, TransformerEncoder):
        out.encoder = model.encoder
    for name, obj in model.objectives.items():
        if isinstance(obj.target_embedding, TextTower):
            out.clip, out.text = name, obj.target_embedding
            if isinstance(obj.decoder, PoolDecoder) and isinstance(obj.decoder.head, nn.Linear):
                out.head = obj.decoder
            out.scale = isinstance(getattr(obj.target, "log_scale", None), nn.Parameter)
            break
    return out


def _text_parts(tower: TextTower) -> Dict[str, str]:
    """canonical text embedding name -> the part that holds it."""
    parts = tower.embedding.parts if isinstance(tower.embedding, ComposedEmbedding) else {}
    out = {}
    for name, part in parts.items():
        if isinstance(part, WordEmbedding):
            out.setdefault("text.token_embedding.weight", f"embedding.parts.{name}.weight")
        elif isinstance(part, PositionEmbedding) and isinstance(part.weight, nn.Parameter):
            out.setdefault("text.positional_embedding", f"embedding.parts.{name}.weight")
    return out


def canonical_to_ours(canon: Dict[str, torch.Tensor], model: nn.Module) -> Tuple[Dict[str, torch.Tensor], Set[str]]:
    """(our tensors, canonical names that found no place in this model)."""
    lay, ours, used = layout(model), {}, set()

    def put(ck: str, ok: str, value: Optional[torch.Tensor] = None) -> None:
        if ck in canon:
            ours[ok] = canon[ck] if value is None else value
            used.add(ck)

    if lay.patch is not None:
        p = lay.patch_at
        put("patch_embed.proj.weight", f"{p}.proj.weight")
        if "patch_embed.proj.weight" in canon and "patch_embed.proj.bias" not in canon:  # bias-free (CLIP)
            ours[f"{p}.proj.bias"] = torch.zeros(canon["patch_embed.proj.weight"].shape[0])
        put("patch_embed.proj.bias", f"{p}.proj.bias")
        n = lay.patch.grid[0] * lay.patch.grid[1]
        pos = canon.get("pos_embed")
        cls_row = pos is not None and "cls_token" in canon and pos.shape[1] == n + 1
        if pos is not None and pos.shape[1] in (n, n + 1) and isinstance(lay.patch.pos_embed, nn.Parameter):
            put("pos_embed", f"{p}.pos_embed", pos[:, -n:])
        if lay.patch.cls_token is not None and "cls_token" in canon:
            put("cls_token", f"{p}.cls_token", canon["cls_token"] + (pos[:, :1] if cls_row else 0))
        if lay.pre_norm_at:
            for q in ("weight", "bias"):
                put(f"norm_pre.{q}", f"{lay.pre_norm_at}.{q}")
    if lay.encoder is not None:
        for k in canon:
            if k.startswith("blocks.") or (k.startswith("norm.") and isinstance(lay.encoder.norm, nn.LayerNorm)):
                put(k, f"encoder.{k}")
    if lay.head is not None:
        at = f"objectives.{lay.clip}.decoder.head"
        put("head.weight", f"{at}.weight")
        if "head.weight" in canon and "head.bias" not in canon:
            ours[f"{at}.bias"] = torch.zeros(canon["head.weight"].shape[0])
        put("head.bias", f"{at}.bias")
    if lay.text is not None:
        at = f"objectives.{lay.clip}.target_embedding"
        for ck, ok in _text_parts(lay.text).items():
            put(ck, f"{at}.{ok}")
        for k in canon:
            if k.startswith("text.blocks.") or (k.startswith("text.norm.")
                                                 and isinstance(lay.text.encoder.norm, nn.LayerNorm)):
                put(k, f"{at}.encoder.{k[5:]}")
        put("text.proj.weight", f"{at}.proj.weight")
    if lay.scale:
        if "logit_scale" in canon:
            put("logit_scale", f"objectives.{lay.clip}.target.log_scale", canon["logit_scale"].reshape(()))
    return ours, set(canon) - used


def act_name(enc: TransformerEncoder) -> str:
    act = enc.blocks[0].mlp.act
    if isinstance(act, QuickGELU):
        return "quick_gelu"
    if isinstance(act, nn.GELU):
        return "gelu_tanh" if act.approximate == "tanh" else "gelu"
    raise ConfigError(f"unknown MLP activation {type(act).__name__}")


def _encoder_spec(enc: TransformerEncoder, what: str) -> dict:
    if not enc.blocks or not enc.blocks[0].pre or not isinstance(enc.norm, nn.LayerNorm):
        raise ConfigError(f"export needs a pre-norm {what} with its final norm (encoder norm \"pre\", final_norm true)")
    blk = enc.blocks[0]
    return {"dim": enc.dim, "depth": len(enc.blocks), "heads": blk.attn.heads,
            "mlp_ratio": blk.mlp.fc1.out_features / enc.dim, "qkv_bias": blk.attn.qkv.bias is not None,
            "eps": blk.norm1.eps, "act": act_name(enc)}


def _block_state(enc: TransformerEncoder, prefix: str, out: dict) -> None:
    for k, v in enc.state_dict().items():
        if k.startswith("blocks.") or k.startswith("norm."):
            out[prefix + k] = v


def image_to_canonical(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The image tower as canonical tensors, and its shape."""
    lay = layout(model)
    emb = lay.patch
    if emb is None:
        raise ConfigError(f"export needs a 'patch' embedding, this model has {type(model.embedding).__name__}")
    if lay.extra_parts:
        raise ConfigError(f"export: embedding parts {list(lay.extra_parts)} after the patch part have no counterpart")
    if emb.pos_embed is None:
        raise ConfigError("export needs position embeddings: the patch embedding has pos 'none'")
    if lay.encoder is None:
        raise ConfigError(f"export needs a 'transformer' encoder, this model has {type(model.encoder).__name__}")
    if lay.encoder.causal:
        raise ConfigError("export needs a bidirectional encoder (model.encoder.causal false)")
    spec = dict(_encoder_spec(lay.encoder, "transformer"), image_size=emb.grid[0] * emb.patch_size,
                patch_size=emb.patch_size, in_chans=emb.proj.in_channels, cls_token=emb.cls_token is not None,
                pre_norm=lay.pre_norm_at is not None)
    sd = model.state_dict()
    canon = {"patch_embed.proj.weight": emb.proj.weight, "patch_embed.proj.bias": emb.proj.bias}
    pos = emb.pos_embed.detach().to(emb.proj.weight.dtype)
    if emb.cls_token is not None:
        canon["cls_token"] = emb.cls_token
        pos = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)  # our CLS token carries no position
    canon["pos_embed"] = pos
    if lay.pre_norm_at:
        spec["pre_norm_eps"] = model.get_submodule(lay.pre_norm_at).eps
        for q in ("weight", "bias"):
            canon[f"norm_pre.{q}"] = sd[f"{lay.pre_norm_at}.{q}"]
    _block_state(lay.encoder, "", canon)
    return {k: v.detach().cpu() for k, v in canon.items()}, spec


def clip_to_canonical(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Image tower + image projection + text tower + logit scale (a clip_vit-shaped model)."""
    canon, spec = image_to_canonical(model)
    lay = layout(model)
    if lay.text is None:
        raise ConfigError("export needs a CLIP-shaped model: no objective has a 'text_tower' target embedding")
    if lay.head is None:
        raise ConfigError(f"objective '{lay.clip}': the image side needs a 'pool' decoder with head 'linear' "
                          f"(an MLP head has no counterpart)")
    if not isinstance(lay.head.norm, nn.Identity):
        raise ConfigError(f"objective '{lay.clip}': the pool decoder's norm (a LayerNorm after the encoder's "
                          f"final norm) has no counterpart: export a recipe whose decoder has norm false")
    if lay.head.pool not in ("cls", "mean") or (lay.head.pool == "cls" and not spec["cls_token"]):
        raise ConfigError(f"objective '{lay.clip}': pool '{lay.head.pool}' has no counterpart")
    tower = lay.text
    parts = _text_parts(tower)
    emb_parts = list(tower.embedding.parts) if isinstance(tower.embedding, ComposedEmbedding) else []
    if len(parts) != 2 or len(emb_parts) != 2:
        raise ConfigError(f"objective '{lay.clip}': the text tower's embedding must be word + learned position "
                          f"parts, has {emb_parts}")
    if not tower.encoder.causal and tower.pool != "first":
        raise ConfigError(f"objective '{lay.clip}': a bidirectional text tower pooling '{tower.pool}' has no "
                          f"counterpart")
    word = next(p for p in tower.embedding.parts.values() if isinstance(p, WordEmbedding))
    pos = next(p for p in tower.embedding.parts.values() if isinstance(p, PositionEmbedding))
    spec.update(pool=lay.head.pool, embed_dim=tower.dim, text=dict(
        _encoder_spec(tower.encoder, "text tower"), vocab_size=word.weight.shape[0], context_length=pos.max_length,
        pad_id=word.pad_id, pool=tower.pool, causal=tower.encoder.causal))
    sd = tower.state_dict()
    canon["head.weight"], canon["head.bias"] = lay.head.head.weight.detach(), lay.head.head.bias.detach()
    canon["text.token_embedding.weight"] = word.weight.detach()
    canon["text.positional_embedding"] = pos.weight.detach()
    _block_state(tower.encoder, "text.", canon)
    canon["text.proj.weight"] = sd["proj.weight"]
    if lay.scale:
        canon["logit_scale"] = model.objectives[lay.clip].target.log_scale.detach()
    return {k: v.detach().cpu() for k, v in canon.items()}, spec


def fold_patch_bias(canon: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """For formats whose patch projection has no bias: bias + position are summed for every patch token,
    so the bias moves into the patch rows of the position table (exact)."""
    out = dict(canon)
    b = out.pop("patch_embed.proj.bias")
    pos = out["pos_embed"].clone()
    start = 1 if "cls_token" in out else 0
    pos[:, start:] += b
    out["pos_embed"] = pos
    return out
