"""`--init-from` sources: recognise the format of a path and return its tensors under our key names.

    ours       a run / checkpoints / step_* directory (or a step's model.pt)
    timm       a timm VisionTransformer state dict (.pth / .pt / .bin / .safetensors)
    open_clip  an open_clip CLIP checkpoint (a file, or a directory with open_clip_config.json)
    hf_vit     a Hugging Face ViT directory (config.json with model_type "vit") or its weights file
    hf_bert    a Hugging Face BERT directory (config.json with model_type "bert")

Foreign tensors go through their format's key table (timm_vit.py, open_clip.py, hf_vit.py, hf_bert.py:
the same tables the exporters use) and tower.py, which knows where this model keeps each part. Source
tensors that find no place come back under "<format>:<their name>", so the loaded / skipped / new report of
--init-from names them as skipped.
"""
import json
import os
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..training import checkpoint as ckpt
from ..errors import ConfigError

_OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                    "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
_TP_HINT = "encoder.transformer.0.self_attn.linear_layers.0.weight"


def _read_tensors(path: str, mmap: bool = False) -> Dict[str, torch.Tensor]:
    import warnings
    try:
        with warnings.catch_warnings():  # torch's notes before it refuses a file would be extra lines
            warnings.simplefilter("ignore")
            sd = _load(path, mmap)
    except Exception as e:  # a corrupt or foreign file: one line, not a traceback
        why = ckpt.load_error(path, e) if not path.endswith(".safetensors") else \
            f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        raise ConfigError(f"{path}: cannot read tensors ({why})") from None
    for key in ("state_dict", "model", "module"):  # training-script wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise ConfigError(f"{path}: not a state dict of tensors")
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def _load(path: str, mmap: bool):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    try:  # mmap: reading the keys costs no copy of the weights (zip-format files)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError:
        if not mmap:
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _hf_model_type(path: str) -> str:
    try:
        with open(os.path.join(path, "config.json")) as f:
            return str(json.load(f).get("model_type", ""))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}/config.json: cannot read ({e})") from None


def _format_of_keys(keys, path: str) -> str:
    from .hf_vit import is_hf_vit_keys
    from .open_clip import is_open_clip
    from .timm_vit import is_timm
    if is_open_clip(keys):
        return "open_clip"
    if is_timm(keys):
        return "timm"
    if is_hf_vit_keys(keys):
        return "hf_vit"
    if any(k.startswith(("bert.embeddings.", "embeddings.word_embeddings.")) for k in keys):
        return "hf_bert"
    if any(k.startswith(("encoder.blocks.", "objectives.", "embedding.")) for k in keys):
        return "ours"
    if _TP_HINT in keys:
        raise ConfigError(f"{path}: a TencentPretrain checkpoint: convert it first with "
                          f"scripts/convert_tencentpretrain.py (it needs the model config)")
    raise ConfigError(f"{path}: unrecognised tensors (e.g. {sorted(keys)[:3]}); --init-from reads our "
                      f"checkpoints, timm ViT, open_clip, Hugging Face BERT / ViT")


def locate(path: str) -> Tuple[str, str]:
    """(format, the file or directory to read). Cheap: reads no tensor of a directory source."""
    if os.path.isdir(path):
        try:
            return "ours", ckpt.resolve_checkpoint(path)
        except ConfigError:
            pass
        for name in _OPEN_CLIP_FILES:
            if os.path.isfile(os.path.join(path, "open_clip_config.json")) and os.path.isfile(os.path.join(path, name)):
                return "open_clip", os.path.join(path, name)
        if os.path.isfile(os.path.join(path, "config.json")):
            kind = _hf_model_type(path)
            if kind in ("bert", "vit"):
                return f"hf_{kind}", path
            raise ConfigError(f"{path}: Hugging Face model_type '{kind}' does not convert (bert, vit do)")
        raise ConfigError(f"no checkpoint at '{path}' (expected our run or step_* directory, an open_clip or "
                          f"Hugging Face BERT / ViT directory, or a weights file)")
    if not os.path.isfile(path):
        raise ConfigError(f"--init-from '{path}': no such file or directory")
    if path.endswith(".safetensors"):
        from safetensors import safe_open
        try:
            with safe_open(path, framework="pt") as f:
                keys = list(f.keys())
        except Exception as e:
            raise ConfigError(f"{path}: cannot read safetensors ({(str(e).strip().splitlines() or [''])[0]})") from None
    else:
        keys = list(_read_tensors(path, mmap=True))
    return _format_of_keys(keys, path), path


def detect_format(path: str) -> str:
    return locate(path)[0]


def _foreign(fmt: str, sd: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    from .hf_vit import from_hf_vit
    from .open_clip import from_open_clip
    from .timm_vit import from_timm
    from .tower import canonical_to_ours
    canon, origin, used = {"timm": from_timm, "open_clip": from_open_clip, "hf_vit": from_hf_vit}[fmt](sd)
    ours, unused = canonical_to_ours(canon, model)
    left = {f"{fmt}:{k}": v for k, v in sd.items() if k not in used}
    left.update({f"{fmt}:{origin[c]}": canon[c] for c in unused})
    return dict(ours, **left)


def _hf_bert(path: str, sd: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    from .hf_bert import hf_to_state, key_pairs, normalise_keys, read_hf_weights
    from .keys import count_layers
    sd = read_hf_weights(path) if sd is None else normalise_keys(sd)
    layers = count_layers(sd, "encoder.layer")
    try:
        ours = hf_to_state(sd, layers)
    except KeyError as e:
        raise ConfigError(f"{path}: not a complete BERT checkpoint (missing {e})") from None
    used = {hf for hf, _, _ in key_pairs(layers) if hf in sd}
    used |= {f"encoder.layer.{i}.attention.self.{n}.{p}" for i in range(layers) for n in ("query", "key", "value")
             for p in ("weight", "bias")}
    return dict(ours, **{f"hf_bert:{k}": v for k, v in sd.items() if k not in used})


def load_pretrained(path: str, model: nn.Module) -> Dict[str, torch.Tensor]:
    """The tensors of `path` (any format above) under the names `model` uses."""
    if os.path.isfile(path):  # read once, recognise by its keys
        sd = _read_tensors(path)
        fmt = _format_of_keys(sd, path)
        return sd if fmt == "ours" else _hf_bert(path, sd) if fmt == "hf_bert" else _foreign(fmt, sd, model)
    fmt, where = locate(path)
    if fmt == "ours":
        return ckpt.load_tensors(where, "model")
    if fmt == "hf_bert":
        return _hf_bert(where)
    if fmt == "hf_vit":
        from .hf_vit import read_hf_dir
        return _foreign(fmt, read_hf_dir(where)[1], model)
    return _foreign(fmt, _read_tensors(where), model)
