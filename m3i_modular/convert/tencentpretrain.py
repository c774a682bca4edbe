"""TencentPretrain -> ours: its flat JSON config -> our recipe, its BERT / ViT checkpoint keys -> ours.

Config fields read: emb_size, hidden_size, feedforward_size, heads_num, layers_num, max_seq_length,
dropout, hidden_act, embedding, remove_embedding_layernorm, layernorm_positioning, mask, target,
labels_num, image_height / image_width / patch_size, and for seq2seq tgt_embedding / decoder /
decoder_layers_num. A seq2seq model's tgt_embedding + decoder read the teacher-forced target sequence:
they become the input side of our objective's decoder ("seq2seq" decoder, `input_embedding`), never a
target embedding; the candidates stay the tied word embedding.
Segment ids: TencentPretrain counts segments from 1 (0 = padding); ours from 0, so its row 0 is dropped.
"""
from typing import Any, Dict, List

import torch

from ..errors import ConfigError

TEXT_EMB = {"word": "word", "pos": "position", "seg": "segment", "sinusoidalpos": "position"}


def _require(cfg: dict, *keys: str) -> None:
    for k in keys:
        if k not in cfg:
            raise ConfigError(f"TencentPretrain config has no '{k}' (is this a TencentPretrain model config?)")


def _text_embedding(names: List[str], cfg: dict, vocab_size: int) -> Dict[str, Any]:
    dim = cfg["emb_size"]
    out: Dict[str, Any] = {}
    for n in names:
        if n not in TEXT_EMB:
            raise ConfigError(f"TencentPretrain embedding '{n}' has no counterpart (valid: {', '.join(TEXT_EMB)})")
        if n == "word":
            out["word"] = {"type": "word", "vocab_size": vocab_size, "dim": dim, "pad_id": 0}
        elif n in ("pos", "sinusoidalpos"):
            out["position"] = {"type": "position", "max_length": cfg["max_seq_length"], "dim": dim,
                               "kind": "learned" if n == "pos" else "sincos"}
        else:
            out["segment"] = {"type": "segment", "num_segments": 2, "dim": dim}
    if not cfg.get("remove_embedding_layernorm", False):
        out["norm"] = {"type": "layer_norm", "dim": dim, "eps": 1e-6, "dropout": cfg.get("dropout", 0.0)}
    return out


def _encoder(cfg: dict, layers_key: str = "layers_num") -> Dict[str, Any]:
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConfigError(f"hidden_act '{act}' is not supported (our blocks use exact GELU)")
    if cfg["emb_size"] != cfg["hidden_size"]:
        raise ConfigError("emb_size != hidden_size (ALBERT factorisation) does not convert")
    return {"type": "transformer", "layers": cfg[layers_key], "heads": cfg["heads_num"], "dim": cfg["hidden_size"],
            "mlp_ratio": cfg["feedforward_size"] / cfg["hidden_size"],
            "norm": cfg.get("layernorm_positioning", "post"), "eps": 1e-6, "dropout": cfg.get("dropout", 0.0),
            "causal": cfg.get("mask", "fully_visible") == "causal"}


def convert_config(cfg: dict, *, vocab_size: int = 0, mask_id: int = 103,
                   special_ids: List[int] = (0, 100, 101, 102, 103)) -> Dict[str, Any]:
    """A TencentPretrain flat config -> our recipe's "model" section."""
    _require(cfg, "emb_size", "hidden_size", "feedforward_size", "heads_num", "layers_num", "embedding", "target")
    targets = cfg["target"] if isinstance(cfg["target"], list) else [cfg["target"]]
    if "patch" in cfg["embedding"]:
        _require(cfg, "image_height", "patch_size")
        if cfg.get("image_width", cfg["image_height"]) != cfg["image_height"]:
            raise ConfigError("only square images convert")
        emb = {"type": "patch", "image_size": cfg["image_height"], "patch_size": cfg["patch_size"],
               "dim": cfg["emb_size"], "pos": "learned", "cls_token": True}
        model = {"embedding": emb, "encoder": _encoder(cfg), "objectives": {
            "cls": {"input": "view1", "target_view": "label",
                    "target_embedding": {"type": "category", "num_classes": cfg.get("labels_num", 1000)},
                    "decoder": {"type": "pool", "pool": "cls", "head": "linear"}, "target": {"type": "boltzmann"}}}}
        return model
    if vocab_size <= 0:
        raise ConfigError("a text model needs the vocabulary size (TencentPretrain reads it from the vocab "
                          "file): pass --vocab-size or --vocab")
    model: Dict[str, Any] = {"embedding": _text_embedding(cfg["embedding"], cfg, vocab_size),
                             "encoder": _encoder(cfg), "objectives": {}}
    word = {"type": "tied_word", "word": "@embedding.word"}
    if "mlm" in targets:
        model["batch_transforms"] = [{"type": "mlm_mask", "mask_id": mask_id, "vocab_size": vocab_size,
                                      "special_ids": list(special_ids)}]
        model["objectives"]["mlm"] = {"input": "mlm_input", "target_view": "text",
                                      "target_embedding": dict(word, mode="masked"),
                                      "decoder": {"type": "mlm_head", "eps": 1e-6}, "target": {"type": "boltzmann"}}
    for sp in ("sp", "sop", "nsp"):
        if sp in targets:  # an identity class embedding keeps the head's logits exactly (set on conversion)
            model["objectives"]["sop"] = {"input": "mlm_input" if "mlm" in targets else "text",
                                          "target_view": "sop_label",
                                          "target_embedding": {"type": "category", "num_classes": 2},
                                          "decoder": {"type": "cls_pooler"}, "target": {"type": "boltzmann"}}
    if "lm" in targets:
        dec: Dict[str, Any] = {"type": "mlm_head", "transform": False}
        if "decoder" in cfg:  # seq2seq: the teacher-forced target enters the decoder, not the target side
            _require(cfg, "tgt_embedding")
            dec = {"type": "seq2seq", "input_embedding": _text_embedding(cfg["tgt_embedding"], cfg, vocab_size),
                   "layers": cfg.get("decoder_layers_num", cfg["layers_num"]), "heads": cfg["heads_num"],
                   "mlp_ratio": cfg["feedforward_size"] / cfg["hidden_size"],
                   "norm": cfg.get("layernorm_positioning", "post"), "eps": 1e-6, "dropout": cfg.get("dropout", 0.0)}
        model["objectives"]["lm"] = {"input": "text", "target_view": "text",
                                     "target_embedding": dict(word, mode="next", bias=False),
                                     "decoder": dec, "target": {"type": "boltzmann"}}
    if not model["objectives"]:
        raise ConfigError(f"no TencentPretrain target among {targets} converts (valid: mlm, sp, sop, lm)")
    return model


def _ln(sd: dict, key: str) -> Dict[str, torch.Tensor]:
    """TencentPretrain LayerNorms are gamma/beta (older) or weight/bias."""
    w = sd.get(f"{key}.gamma", sd.get(f"{key}.weight"))
    b = sd.get(f"{key}.beta", sd.get(f"{key}.bias"))
    if w is None or b is None:
        raise ConfigError(f"checkpoint has no LayerNorm '{key}'")
    return {"weight": w, "bias": b}


def _put(out: dict, prefix: str, tensors: Dict[str, torch.Tensor]) -> None:
    for k, v in tensors.items():
        out[f"{prefix}.{k}"] = v


def _linear(sd: dict, key: str) -> Dict[str, torch.Tensor]:
    return {"weight": sd[f"{key}.weight"], "bias": sd[f"{key}.bias"]}


def convert_state(sd: Dict[str, torch.Tensor], layers: int) -> Dict[str, torch.Tensor]:
    """TencentPretrain BERT / ViT checkpoint keys -> ours."""
    out: Dict[str, torch.Tensor] = {}
    if "embedding.patch.projection.weight" in sd:  # ViT: its cls position is folded into our cls token
        pos = sd["embedding.pos.embedding.weight"]
        _put(out, "embedding.proj", _linear(sd, "embedding.patch.projection"))
        out["embedding.cls_token"] = sd["embedding.patch.cls_emb"].reshape(1, 1, -1) + pos[0]
        out["embedding.pos_embed"] = pos[1:].unsqueeze(0)
    else:
        out["embedding.parts.word.weight"] = sd["embedding.word.embedding.weight"]
        if "embedding.pos.embedding.weight" in sd:
            out["embedding.parts.position.weight"] = sd["embedding.pos.embedding.weight"]
        if "embedding.seg.embedding.weight" in sd:
            out["embedding.parts.segment.weight"] = sd["embedding.seg.embedding.weight"][1:3]
        if "embedding.layer_norm.gamma" in sd or "embedding.layer_norm.weight" in sd:
            _put(out, "embedding.parts.norm.norm", _ln(sd, "embedding.layer_norm"))
    for i in range(layers):
        src, dst = f"encoder.transformer.{i}.", f"encoder.blocks.{i}."
        for p in ("weight", "bias"):
            out[dst + f"attn.qkv.{p}"] = torch.cat([sd[src + f"self_attn.linear_layers.{j}.{p}"] for j in range(3)])
        _put(out, dst + "attn.proj", _linear(sd, src + "self_attn.final_linear"))
        _put(out, dst + "norm1", _ln(sd, src + "layer_norm_1"))
        _put(out, dst + "mlp.fc1", _linear(sd, src + "feed_forward.linear_1"))
        _put(out, dst + "mlp.fc2", _linear(sd, src + "feed_forward.linear_2"))
        _put(out, dst + "norm2", _ln(sd, src + "layer_norm_2"))
    if "encoder.layer_norm.gamma" in sd or "encoder.layer_norm.weight" in sd:  # pre-norm stacks end in one
        _put(out, "encoder.norm", _ln(sd, "encoder.layer_norm"))
    if "target.mlm.linear_1.weight" in sd:
        _put(out, "objectives.mlm.decoder.dense", _linear(sd, "target.mlm.linear_1"))
        _put(out, "objectives.mlm.decoder.norm", _ln(sd, "target.mlm.layer_norm"))
        out["objectives.mlm.target_embedding.bias"] = sd["target.mlm.linear_2.bias"]
    for name in ("sp", "sop"):
        if f"target.{name}.linear_1.weight" in sd:
            _put(out, "objectives.sop.decoder.dense", _linear(sd, f"target.{name}.linear_1"))
            _put(out, "objectives.sop.decoder.out", _linear(sd, f"target.{name}.linear_2"))
            out["objectives.sop.target_embedding.weight"] = torch.eye(2)
            out["objectives.sop.target_embedding.bias"] = torch.zeros(2)
    return out
