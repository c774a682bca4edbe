"""Upstream InternImage-T/S/B classification checkpoints (OpenGVLab/InternImage) -> a checkpoint directory that
`pretrain.py --init-from` loads (scripts/convert_internimage.py is the command line).

Every upstream tensor is mapped by name (stem -> embedding, levels -> encoder.stages, conv_head ->
encoder.head, the classifier -> the category objective's class embeddings); a tensor with no mapping, a
shape that differs from the recipe's model, or a model tensor left without a value is an error. The input is
read with torch.load(weights_only=True) (or safetensors)."""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional, Tuple

import torch

from ..errors import ConfigError, DataError

# (upstream pattern, our name); \1, \2 are stage / block indices. Order does not matter: patterns are exclusive.
_RULES: List[Tuple[str, str]] = [
    (r"patch_embed\.conv([12])\.(weight|bias)", r"embedding.conv\1.\2"),
    (r"patch_embed\.norm([12])\.\d\.(.+)", r"embedding.norm\1.\2"),  # LN behind a permute, or BN
    (r"levels\.(\d+)\.blocks\.(\d+)\.norm([12])\.0\.(weight|bias)", r"encoder.stages.\1.blocks.\2.norm\3.\4"),
    (r"levels\.(\d+)\.blocks\.(\d+)\.(dcn\..+|mlp\.fc[12]\.(?:weight|bias)|gamma[12])",
     r"encoder.stages.\1.blocks.\2.\3"),
    (r"levels\.(\d+)\.norm\.0\.(weight|bias)", r"encoder.stages.\1.norm.\2"),
    (r"levels\.(\d+)\.downsample\.conv\.weight", r"encoder.stages.\1.downsample.conv.weight"),
    (r"levels\.(\d+)\.downsample\.norm\.1\.(weight|bias)", r"encoder.stages.\1.downsample.norm.\2"),
    (r"conv_head\.0\.weight", r"encoder.head.conv.weight"),
    (r"conv_head\.1\.0\.(.+)", r"encoder.head.bn.\1"),
]
_CLASSIFIER = {"head.weight": "weight", "head.bias": "bias"}


def map_key(name: str, objective: Optional[str]) -> Optional[str]:
    """Our name for an upstream tensor, or None when no rule maps it."""
    if name in _CLASSIFIER:
        return f"objectives.{objective}.target_embedding.{_CLASSIFIER[name]}" if objective else None
    for pattern, repl in _RULES:
        if re.fullmatch(pattern, name):
            return re.sub(f"^{pattern}$", repl, name)
    return None


def convert_state_dict(upstream: Dict[str, torch.Tensor], *, objective: Optional[str] = "category",
                       drop: Tuple[str, ...] = ()) -> Dict[str, torch.Tensor]:
    """Rename every tensor; raise DataError naming the first few that no rule maps. Keys starting with a
    prefix in `drop` are left out on purpose (e.g. "head." for a backbone-only conversion)."""
    out, unmapped = {}, []
    for name, value in upstream.items():
        if name.startswith(drop):
            continue
        ours = map_key(name, objective)
        if ours is None:
            unmapped.append(name)
        else:
            out[ours] = value
    if unmapped:
        raise DataError(f"{len(unmapped)} upstream tensors have no mapping (e.g. {', '.join(unmapped[:3])}); "
                        f"only InternImage-T/S/B classification checkpoints (DCNv3, no H/G extras) convert")
    return out


def check_against(converted: Dict[str, torch.Tensor], expected: Dict[str, torch.Size], *,
                  prefixes: Tuple[str, ...] = ("embedding.", "encoder.")) -> None:
    """Shapes must match the model's; every model tensor under `prefixes` must receive a value."""
    for k, v in converted.items():
        if k not in expected:
            raise DataError(f"converted tensor '{k}' is not in the recipe's model: check the recipe's size, "
                            f"head_scale and objective name")
        if tuple(v.shape) != tuple(expected[k]):
            raise DataError(f"shape of '{k}': checkpoint {tuple(v.shape)}, recipe {tuple(expected[k])}: "
                            f"the recipe's InternImage size differs from the checkpoint's")
    missing = [k for k in expected if k.startswith(prefixes) and k not in converted]
    if missing:
        raise DataError(f"{len(missing)} model tensors get no value (e.g. {', '.join(missing[:3])}): the "
                        f"checkpoint is smaller than the recipe's model")


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise DataError(f"no checkpoint file at '{path}'")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        sd = load_file(path)
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickled objects beyond tensors: refuse rather than unpickle
            raise DataError(f"'{path}' does not load with weights_only=True ({type(e).__name__}); "
                            f"re-save its state dict with only tensors") from None
    for key in ("model", "state_dict", "module"):  # upstream wraps the weights in {"model": ...}
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise DataError(f"'{path}' holds no state dict of tensors")
    return sd


def model_shapes(cfg: dict) -> Dict[str, torch.Size]:
    """The recipe's model tensors and their shapes, built on the meta device (no memory)."""
    from ..recipe.model import build_model
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    return {k: v.shape for k, v in model.state_dict().items()}


def convert(input_path: str, config: str, output: str, *, objective: str = "category", backbone_only: bool = False,
            force: bool = False) -> int:
    """Convert the upstream checkpoint at `input_path` for the recipe `config` into the checkpoint directory
    `output` (written under a temporary name); the number of tensors written."""
    from ..recipe.config import load_config
    from ..runtime.atomic import atomic_dir
    cfg = load_config(config)
    expected = model_shapes(cfg)
    upstream = read_checkpoint(input_path)
    drop: Tuple[str, ...] = ("head.",) if backbone_only else ()
    if backbone_only and not any(k.startswith("encoder.head.") for k in expected):
        drop += ("conv_head.",)
    converted = convert_state_dict(upstream, objective=None if backbone_only else objective, drop=drop)
    check_against(converted, expected)
    if os.path.exists(output) and not force:
        raise ConfigError(f"'{output}' exists: choose another --output or pass --force")
    with atomic_dir(output, overwrite=force) as tmp:
        torch.save({k: v.contiguous() for k, v in converted.items()}, os.path.join(tmp, "model.pt"))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({k: v for k, v in cfg.items() if not k.startswith("_")}, f, indent=2)
    return len(converted)
