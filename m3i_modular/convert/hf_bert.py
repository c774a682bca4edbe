"""Hugging Face BERT directory (config.json + model.safetensors or pytorch_model.bin + vocab.txt) <-> our
checkpoint. Encoder, embeddings and the MLM head convert; HF's pooler / NSP head has no counterpart (our
SOP head pools [CLS] without the tanh layer) and is left out both ways."""
import json
import os
import shutil
import tempfile
from typing import Dict

import torch

from ..runtime.atomic import new_output_dir
from ..training.checkpoint import load_config_json, load_tensors, resolve_checkpoint, run_metadata, save_checkpoint
from ..errors import ConfigError
from .bert_recipe import bert_model_config, bert_recipe

EMB = {"embeddings.word_embeddings": "embedding.parts.word", "embeddings.position_embeddings": "embedding.parts.position",
       "embeddings.token_type_embeddings": "embedding.parts.segment", "embeddings.LayerNorm": "embedding.parts.norm.norm"}
LAYER = {"attention.output.dense": "attn.proj", "attention.output.LayerNorm": "norm1",
         "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2", "output.LayerNorm": "norm2"}
HEAD = {"cls.predictions.transform.dense": "objectives.mlm.decoder.dense",
        "cls.predictions.transform.LayerNorm": "objectives.mlm.decoder.norm"}


def read_hf_weights(hf_dir: str) -> Dict[str, torch.Tensor]:
    st, binf = os.path.join(hf_dir, "model.safetensors"), os.path.join(hf_dir, "pytorch_model.bin")
    if os.path.isfile(st):
        from safetensors.torch import load_file
        sd = load_file(st)
    elif os.path.isfile(binf):
        sd = torch.load(binf, map_location="cpu", weights_only=True)
    else:
        raise ConfigError(f"{hf_dir}: no model.safetensors or pytorch_model.bin")
    return normalise_keys(sd)


def normalise_keys(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop BertForPreTraining / BertForMaskedLM's 'bert.' prefix; old gamma / beta LayerNorm names."""
    out = {}
    for k, v in sd.items():
        k = k[5:] if k.startswith("bert.") else k
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[k] = v
    return out


def key_pairs(layers: int):
    """(HF name as read_hf_weights returns it, our name, required) of every tensor that maps one to one; the
    fused qkv is split / joined by the callers. One table drives both directions."""
    out = [(f"{hf}.{p}", f"{ours}.{p}", False) for hf, ours in list(EMB.items()) + list(HEAD.items())
           for p in ("weight", "bias")]
    out.append(("cls.predictions.bias", "objectives.mlm.target_embedding.bias", False))
    for i in range(layers):
        out += [(f"encoder.layer.{i}.{hf}.{p}", f"encoder.blocks.{i}.{ours}.{p}", True)
                for hf, ours in LAYER.items() for p in ("weight", "bias")]
    return out


def _hf_name(name: str) -> str:
    """HF's BertForPreTraining keeps the MLM head at the top level and everything else under 'bert.'."""
    return name if name.startswith("cls.") else f"bert.{name}"


def hf_to_state(sd: Dict[str, torch.Tensor], layers: int) -> Dict[str, torch.Tensor]:
    out = {ours: sd[hf] for hf, ours, required in key_pairs(layers) if required or hf in sd}
    for i in range(layers):
        src, dst = f"encoder.layer.{i}.attention.self.", f"encoder.blocks.{i}.attn.qkv."
        for p in ("weight", "bias"):
            out[dst + p] = torch.cat([sd[src + f"{n}.{p}"] for n in ("query", "key", "value")])
    return out


def state_to_hf(sd: Dict[str, torch.Tensor], layers: int) -> Dict[str, torch.Tensor]:
    out = {_hf_name(hf): sd[ours] for hf, ours, required in key_pairs(layers) if required or ours in sd}
    for i in range(layers):
        src, dst = f"encoder.blocks.{i}.attn.qkv.", f"bert.encoder.layer.{i}.attention.self."
        for p in ("weight", "bias"):
            for n, part in zip(("query", "key", "value"), sd[src + p].chunk(3)):
                out[dst + f"{n}.{p}"] = part
    return {k: v.contiguous().clone() for k, v in out.items()}


def _hf_sizes(cfg: dict) -> dict:
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConfigError(f"hidden_act '{act}' is not supported (our blocks use exact GELU)")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError("only absolute position embeddings convert")
    return dict(vocab_size=cfg["vocab_size"], dim=cfg["hidden_size"], layers=cfg["num_hidden_layers"],
                heads=cfg["num_attention_heads"], ffn=cfg["intermediate_size"],
                max_length=cfg["max_position_embeddings"], type_vocab=cfg.get("type_vocab_size", 2),
                eps=cfg.get("layer_norm_eps", 1e-12), dropout=cfg.get("hidden_dropout_prob", 0.1))


def hf_to_ours(hf_dir: str, out_dir: str) -> str:
    """Write our checkpoint (out_dir/step_00000000 + latest) from a HF BERT directory; return its path."""
    from ..data import tokenizers  # noqa: F401  (registration)
    from ..recipe.model import build_model
    from ..registry import TOKENIZERS, build
    try:
        with open(os.path.join(hf_dir, "config.json")) as f:
            hf_cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{hf_dir}/config.json: cannot read ({e})") from None
    vocab = os.path.join(hf_dir, "vocab.txt")
    if not os.path.isfile(vocab):
        raise ConfigError(f"{hf_dir}: no vocab.txt")
    lowercase = True
    tc = os.path.join(hf_dir, "tokenizer_config.json")
    if os.path.isfile(tc):
        with open(tc) as f:
            lowercase = bool(json.load(f).get("do_lower_case", True))
    tok = build(TOKENIZERS, {"type": "wordpiece", "vocab": vocab, "lowercase": lowercase})
    sizes = _hf_sizes(hf_cfg)
    specials = sorted(set(tok.special_ids))
    model_cfg = bert_model_config(**sizes, mask_id=tok.mask_id if tok.mask_id is not None else 0,
                                  special_ids=specials)
    model = build_model(model_cfg, seed=0)
    state = model.state_dict()
    conv = hf_to_state(read_hf_weights(hf_dir), sizes["layers"])
    for k, v in conv.items():
        if k not in state or state[k].shape != v.shape:
            raise ConfigError(f"converted tensor '{k}' {tuple(v.shape)} does not fit the model")
        state[k] = v
    recipe = bert_recipe(model_cfg, vocab="tokenizer/vocab.txt", lowercase=lowercase)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(tmp)
        extra = {f"tokenizer/{n}": os.path.join(tmp, n) for n in os.listdir(tmp)}
        return save_checkpoint(out_dir, 0, {"model": state}, config=recipe,
                               meta=dict(run_metadata(1, "fp32"), converted_from=os.path.abspath(hf_dir)),
                               extra_files=extra)


def ours_to_hf(ckpt: str, out_dir: str) -> str:
    """Write a HF BERT directory (config.json, model.safetensors, vocab.txt) from our checkpoint."""
    from safetensors.torch import save_file
    d = resolve_checkpoint(ckpt)
    cfg = load_config_json(d)
    m = cfg["model"]
    try:
        emb, enc = m["embedding"], m["encoder"]
        dim, layers = enc["dim"], enc["layers"]
        hf_cfg = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_act": "gelu",
                  "vocab_size": emb["word"]["vocab_size"], "hidden_size": dim, "num_hidden_layers": layers,
                  "num_attention_heads": enc["heads"], "intermediate_size": int(dim * enc.get("mlp_ratio", 4.0)),
                  "max_position_embeddings": emb["position"]["max_length"],
                  "type_vocab_size": emb.get("segment", {}).get("num_segments", 2),
                  "layer_norm_eps": enc.get("eps", 1e-6), "hidden_dropout_prob": enc.get("dropout", 0.0),
                  "attention_probs_dropout_prob": enc.get("dropout", 0.0), "pad_token_id": 0,
                  "position_embedding_type": "absolute"}
        if enc.get("norm", "pre") != "post" or "norm" not in emb:
            raise KeyError("a post-norm encoder with an embedding layer_norm")
    except KeyError as e:
        raise ConfigError(f"{d}: not a BERT-shaped recipe (missing {e})") from None
    sd = state_to_hf(load_tensors(d, "model"), layers)
    with new_output_dir(out_dir) as tmp:
        save_file(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(hf_cfg, f, indent=2)
        vocab = os.path.join(d, "tokenizer", "vocab.txt")
        if os.path.isfile(vocab):
            shutil.copyfile(vocab, os.path.join(tmp, "vocab.txt"))
    return out_dir
