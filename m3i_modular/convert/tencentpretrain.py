"""TencentPretrain -> ours: its flat JSON model config -> our recipe's "model" section (checkpoints:
tencentpretrain_state.py).

What converts, by the families of TencentPretrain's models/ folder:
  bert/*, megatron/bert_*, xlm-roberta/*   word+pos+seg, post-norm encoder, mlm (+ sp / sop)
  gpt2/*, megatron/gpt2_*                  word+pos, pre-norm causal encoder, hidden_act gelu_fast, lm
  vit/*                                    patch+pos, pre-norm encoder, cls head (Linear-tanh-Linear)
  clip/*                                   two streams (stream_0 text, stream_1 image) + clr target
  bart/*                                   encoder-decoder: tgt_embedding + decoder -> our seq2seq decoder
Everything else is refused with one line naming what has no counterpart in our parts (relu / silu
activations, relative / rotary / ALiBi positions, T5 / RMS norms, gated FFNs, TencentPretrain's
sinusoidal positions, ALBERT's factorised and shared layers, prefix-LM masks, RNN / CNN encoders, speech and
image-token embeddings, and so on).

Facts of TencentPretrain's layout the conversion keeps: a seq2seq model's tgt_embedding + decoder read the
teacher-forced target, so they become the input side of our objective's decoder ("seq2seq", its
`input_embedding`), never a target embedding; the candidates stay the tied word embedding. Segment ids count
from 1 there (0 = padding), from 0 here. CLIP's stream_0 is the text tower (fully visible, post-norm, pools
its first token, two embedding LayerNorms: the stream's Embedding and DualEmbedding each apply one), stream_1
the image tower; `projection` matrices have no bias.
"""
from typing import Any, Dict, List, Optional

from ..errors import ConfigError

ACTS = {"gelu": "gelu", "gelu_fast": "gelu_tanh"}
TEXT_EMB = {"word": "word", "pos": "position", "seg": "segment"}
TARGETS = ("mlm", "sp", "sop", "nsp", "lm", "cls", "clr")
# (key, value that converts, what is missing when it does not)
_FLAGS = (("relative_position_embedding", False, "relative position embeddings (T5)"),
          ("rotary_position_embedding", False, "rotary position embeddings"),
          ("alibi_position_embedding", False, "ALiBi position biases"),
          ("layer_number_scale", False, "layer-number attention scaling (BLOOM)"),
          ("has_residual_attention", False, "residual attention scores"),
          ("remove_attention_scale", False, "attention without the 1/sqrt(d) scale"),
          ("remove_transformer_bias", False, "transformer layers without biases"),
          ("factorized_embedding_parameterization", False, "ALBERT's factorised embedding"),
          ("parameter_sharing", False, "ALBERT's layers shared across depth"),
          ("layernorm", "normal", "T5 / RMS layer norms"),
          ("feed_forward", "dense", "a gated feed-forward (GLU)"))


def _refuse(what: str) -> ConfigError:
    return ConfigError(f"TencentPretrain {what} has no counterpart in our parts")


def _require(cfg: dict, *keys: str) -> None:
    for k in keys:
        if k not in cfg:
            raise ConfigError(f"TencentPretrain config has no '{k}' (is this a TencentPretrain model config?)")


def check_stream(cfg: dict) -> None:
    """One line naming the first thing in a (stream's) config that our transformer cannot express."""
    enc = cfg.get("encoder", "transformer")
    if enc != "transformer":
        raise _refuse(f"encoder '{enc}'")
    _require(cfg, "emb_size", "hidden_size", "feedforward_size", "heads_num", "layers_num", "embedding")
    act = cfg.get("hidden_act", "gelu")
    if act not in ACTS:
        raise _refuse(f"hidden_act '{act}' (ours: {', '.join(ACTS)})")
    for key, ok, what in _FLAGS:
        if cfg.get(key, ok) != ok:
            raise _refuse(f"{key}={cfg[key]!r} ({what})")
    if cfg["emb_size"] != cfg["hidden_size"]:
        raise _refuse("emb_size != hidden_size (a factorised embedding)")
    if cfg.get("mask", "fully_visible") not in ("fully_visible", "causal"):
        raise _refuse(f"mask '{cfg['mask']}' (prefix LM)")
    if "attention_head_size" in cfg and cfg["attention_head_size"] * cfg["heads_num"] != cfg["hidden_size"]:
        raise _refuse("attention_head_size * heads_num != hidden_size")
    if cfg.get("local_kv_heads_num", cfg["heads_num"]) != cfg["heads_num"]:
        raise _refuse("grouped key/value heads")
    for n in list(cfg["embedding"]) + list(cfg.get("tgt_embedding", [])):
        if n == "sinusoidalpos":
            raise _refuse("embedding 'sinusoidalpos' (its table is interleaved sin/cos from position 2 and "
                          "scales the word embedding by sqrt(emb_size))")
        if n not in TEXT_EMB and n != "patch":
            raise _refuse(f"embedding '{n}' (ours: {', '.join(list(TEXT_EMB) + ['patch'])})")


def _text_embedding(names: List[str], cfg: dict, vocab_size: int, pad_id: int = 0) -> Dict[str, Any]:
    dim = cfg["emb_size"]
    out: Dict[str, Any] = {}
    for n in names:
        if n == "word":
            out["word"] = {"type": "word", "vocab_size": vocab_size, "dim": dim, "pad_id": pad_id}
        elif n == "pos":
            _require(cfg, "max_seq_length")
            out["position"] = {"type": "position", "max_length": cfg["max_seq_length"], "dim": dim}
        elif n == "seg":
            out["segment"] = {"type": "segment", "num_segments": 2, "dim": dim}
        else:
            raise _refuse(f"text embedding '{n}'")
    if "word" not in out or next(iter(out)) != "word":
        raise _refuse(f"embedding {names} (a text embedding starts with 'word')")
    if not cfg.get("remove_embedding_layernorm", False):
        out["norm"] = {"type": "layer_norm", "dim": dim, "eps": 1e-6, "dropout": cfg.get("dropout", 0.0)}
    return out


def _encoder(cfg: dict, **over: Any) -> Dict[str, Any]:
    out = {"type": "transformer", "layers": cfg["layers_num"], "heads": cfg["heads_num"], "dim": cfg["hidden_size"],
           "mlp_ratio": cfg["feedforward_size"] / cfg["hidden_size"],
           "norm": cfg.get("layernorm_positioning", "post"), "eps": cfg.get("layernorm_eps", 1e-6),
           "dropout": cfg.get("dropout", 0.0), "causal": cfg.get("mask", "fully_visible") == "causal"}
    act = ACTS[cfg.get("hidden_act", "gelu")]
    if act != "gelu":
        out["act"] = act
    out.update(over)
    return out


def _patch(cfg: dict) -> Dict[str, Any]:
    _require(cfg, "image_height", "patch_size")
    if cfg.get("image_width", cfg["image_height"]) != cfg["image_height"]:
        raise _refuse("non-square images (image_width != image_height)")
    if list(cfg["embedding"]) != ["patch", "pos"] or not cfg.get("remove_embedding_layernorm", False):
        raise _refuse(f"image embedding {cfg['embedding']} with remove_embedding_layernorm "
                      f"{cfg.get('remove_embedding_layernorm', False)} (ours: ['patch', 'pos'], no LayerNorm)")
    n = (cfg["image_height"] // cfg["patch_size"]) ** 2 + 1
    if cfg.get("max_seq_length", n) < n:
        raise ConfigError(f"max_seq_length {cfg['max_seq_length']} < {n} patches + CLS")
    out = {"type": "patch", "image_size": cfg["image_height"], "patch_size": cfg["patch_size"],
           "dim": cfg["emb_size"], "pos": "learned", "cls_token": True}
    if cfg.get("channels_num", 3) != 3:
        out["in_chans"] = cfg["channels_num"]
    return out


def _pooling(cfg: dict, what: str) -> None:
    if cfg.get("pooling", "first") != "first":
        raise _refuse(f"{what} pooling '{cfg['pooling']}' (ours pools the first token here)")


def _clip(cfg: dict, vocab_size: int) -> Dict[str, Any]:
    s0, s1 = dict(cfg, **cfg["stream_0"]), dict(cfg, **cfg["stream_1"])
    for s in (s0, s1):
        check_stream(s)
    if cfg.get("tie_weights", False):
        raise _refuse("dual stream with tie_weights (one encoder for both streams)")
    if "patch" in s0["embedding"] or "patch" not in s1["embedding"]:
        raise _refuse("dual stream other than stream_0 text + stream_1 image")
    if not cfg.get("projection", False):
        raise _refuse("CLIP without projection (ours always projects both towers)")
    _require(cfg, "feature_size")
    _pooling(s0, "text stream")
    _pooling(s1, "image stream")
    text_emb = _text_embedding(s0["embedding"], s0, _vocab(vocab_size))
    if not s0.get("remove_embedding_layernorm", False):  # the stream's Embedding and DualEmbedding each norm
        text_emb["norm_2"] = dict(text_emb["norm"])
    tower = {"type": "text_tower", "dim": cfg["feature_size"], "pool": "first", "embedding": text_emb,
             "encoder": _encoder(s0)}
    return {"embedding": _patch(s1), "encoder": _encoder(s1),
            "objectives": {"clip": {
                "input": "view1", "target_view": "text", "target_embedding": tower,
                "decoder": {"type": "pool", "pool": "cls", "head": "linear"},
                "target": {"type": "infonce", "temperature": 0.07, "learn_temperature": True,
                           "max_logit_scale": 100.0, "negatives": "batch", "symmetric": True}}}}


def _vocab(vocab_size: int) -> int:
    if vocab_size <= 0:
        raise ConfigError("a text model needs the vocabulary size (TencentPretrain reads it from the vocab "
                          "file): pass --vocab-size or --vocab")
    return vocab_size


def convert_config(cfg: dict, *, vocab_size: int = 0, mask_id: int = 103,
                   special_ids: List[int] = (0, 100, 101, 102, 103),
                   notes: Optional[List[str]] = None) -> Dict[str, Any]:
    """A TencentPretrain flat config -> our recipe's "model" section. `notes` collects what converts with a
    difference the user should know about (an untied output layer becomes tied)."""
    notes = notes if notes is not None else []
    if "stream_0" in cfg or "stream_1" in cfg:
        targets = cfg.get("target", [])
        if "clr" not in targets:
            raise _refuse(f"dual-stream model with target {targets} (ours: the 'clr' target, CLIP)")
        return _clip(cfg, vocab_size)
    _require(cfg, "target")
    check_stream(cfg)
    targets = cfg["target"] if isinstance(cfg["target"], list) else [cfg["target"]]
    for t in targets:
        if t not in TARGETS:
            raise _refuse(f"target '{t}' (ours: {', '.join(TARGETS)})")
    if "patch" in cfg["embedding"]:
        if targets != ["cls"]:
            raise _refuse(f"image model with target {targets} (ours: cls)")
        _pooling(cfg, "cls target")
        labels = cfg.get("labels_num", 1000)
        return {"embedding": _patch(cfg), "encoder": _encoder(cfg), "objectives": {"cls": {
            "input": "view1", "target_view": "label",
            # an identity class embedding keeps TencentPretrain's head (Linear-tanh-Linear) exactly
            "target_embedding": {"type": "category", "num_classes": labels},
            "decoder": {"type": "cls_pooler"}, "target": {"type": "boltzmann"}}}}
    causal = cfg.get("mask", "fully_visible") == "causal"
    # TencentPretrain's causal mask ignores padding; pad_id -1 keeps every token attendable here too
    model: Dict[str, Any] = {"embedding": _text_embedding(cfg["embedding"], cfg, _vocab(vocab_size),
                                                          pad_id=-1 if causal else 0),
                             "encoder": _encoder(cfg), "objectives": {}}
    word = {"type": "tied_word", "word": "@embedding.word"}
    if ("mlm" in targets or "lm" in targets) and not cfg.get("tie_weights", False):
        notes.append("tie_weights is false: our output layer is the word embedding itself, so a checkpoint "
                     "converts only when its output matrix equals the word embedding")
    if "mlm" in targets:
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise _refuse(f"MLM head with hidden_act '{cfg['hidden_act']}' (ours: exact GELU)")
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
            if cfg["decoder"] != "transformer":
                raise _refuse(f"decoder '{cfg['decoder']}'")
            if causal:
                raise _refuse("encoder-decoder with a causal encoder mask")
            dec = {"type": "seq2seq", "input_embedding": _text_embedding(cfg["tgt_embedding"], cfg, vocab_size),
                   "layers": cfg.get("decoder_layers_num", cfg["layers_num"]), "heads": cfg["heads_num"],
                   "mlp_ratio": cfg["feedforward_size"] / cfg["hidden_size"],
                   "norm": cfg.get("layernorm_positioning", "post"), "eps": cfg.get("layernorm_eps", 1e-6),
                   "dropout": cfg.get("dropout", 0.0)}
            if cfg.get("hidden_act", "gelu") != "gelu":
                raise _refuse(f"decoder with hidden_act '{cfg['hidden_act']}' (our seq2seq decoder: exact GELU)")
            if cfg.get("share_embedding", False):
                notes.append("share_embedding: the decoder's input word embedding starts as a copy of the "
                             "encoder's (our seq2seq decoder owns its input embedding), so the two train apart")
        elif not causal:
            raise _refuse("lm target on a fully visible encoder without a decoder")
        model["objectives"]["lm"] = {"input": "text", "target_view": "text",
                                     "target_embedding": dict(word, mode="next",
                                                              bias=bool(cfg.get("has_lmtarget_bias", False))),
                                     "decoder": dec, "target": {"type": "boltzmann"}}
    if not model["objectives"]:
        raise ConfigError(f"no TencentPretrain target among {targets} converts (valid: mlm, sp, sop, lm)")
    return model
