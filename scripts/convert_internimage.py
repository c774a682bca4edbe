"""Convert an upstream InternImage-T/S/B classification checkpoint (OpenGVLab/InternImage) into a checkpoint
directory that `pretrain.py --init-from` loads.

    python scripts/convert_internimage.py --input internimage_t_1k_224.pth \
        --config models/supervised_internimage_base.json --output runs/internimage_t_init

Every upstream tensor is mapped by name (stem -> embedding, levels -> encoder.stages, conv_head ->
encoder.head, the classifier -> the category objective's class embeddings); a tensor with no mapping, a
shape that differs from the recipe's model, or a model tensor left without a value is an error. Pass
--backbone-only to drop the classifier (and conv_head when the recipe has no head). The input is read with
torch.load(weights_only=True) (or safetensors); the output directory is written under a temporary name.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from m3i_modular.errors import ConfigError, DataError, entry_point  # noqa: E402

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


def _model_shapes(cfg: dict) -> Dict[str, torch.Size]:
    from m3i_modular.model import build_model
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    return {k: v.shape for k, v in model.state_dict().items()}


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="upstream .pth (or .safetensors)")
    p.add_argument("--config", required=True, help="the recipe whose model receives the weights")
    p.add_argument("--output", required=True, help="checkpoint directory to write (model.pt + config.json)")
    p.add_argument("--objective", default="category", help="objective whose class embeddings get the classifier")
    p.add_argument("--backbone-only", action="store_true", help="drop the classifier (and conv_head if unused)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    args = p.parse_args(argv)
    from m3i_modular.config import load_config
    from m3i_modular.atomic import atomic_dir
    cfg = load_config(args.config)
    expected = _model_shapes(cfg)
    upstream = read_checkpoint(args.input)
    drop: Tuple[str, ...] = ("head.",) if args.backbone_only else ()
    if args.backbone_only and not any(k.startswith("encoder.head.") for k in expected):
        drop += ("conv_head.",)
    converted = convert_state_dict(upstream, objective=None if args.backbone_only else args.objective,
                                   drop=drop)
    check_against(converted, expected)
    if os.path.exists(args.output) and not args.force:
        raise ConfigError(f"'{args.output}' exists: choose another --output or pass --force")
    with atomic_dir(args.output, overwrite=args.force) as tmp:
        torch.save({k: v.contiguous() for k, v in converted.items()}, os.path.join(tmp, "model.pt"))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({k: v for k, v in cfg.items() if not k.startswith("_")}, f, indent=2)
    print(f"wrote {len(converted)} tensors to {args.output} (load with pretrain.py --init-from {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
