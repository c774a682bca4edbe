"""Shared command line of finetune/run_linear_probe.py and finetune/run_knn.py: a checkpoint (or a recipe at
random init), the recipe's data source at split train / val, features, then the evaluation. User mistakes
end in one line on stderr and exit code 2."""
import argparse
import json
import os
import sys
import tempfile
import time
from typing import Callable, List, Optional

import torch

from .. import checkpoint as ckpt
from ..config import load_config
from ..errors import ConfigError, DataError
from .features import build_split_source, extract_features, load_split


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a run directory (its latest checkpoint) or a checkpoints/step_* dir")
    src.add_argument("--random-init", action="store_true", help="evaluate the recipe's model at random init")
    p.add_argument("--config", help="recipe for --random-init (a checkpoint carries its own)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value for --random-init (repeatable)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that registers components (repeatable)")
    p.add_argument("--train-samples", type=int, default=2000, help="samples of the train split (default 2000)")
    p.add_argument("--val-samples", type=int, default=1000, help="samples of the held-out split (default 1000)")
    p.add_argument("--eval-split", default="val", help="the held-out split (default val)")
    p.add_argument("--source", type=int, default=0, help="which of the recipe's data sources (default 0)")
    p.add_argument("--crop-pct", type=float, default=1.0, help="eval resize = size / crop_pct (default 1.0)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=0, help="data loader workers for rendering images")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--output", help="JSON file for the results (default: next to the checkpoint, or the "
                                    "working directory for --random-init)")
    return p


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device here (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: unknown device '{name}' (cpu, cuda, cuda:N or auto)") from None


def load_model(args: argparse.Namespace):
    """(Pretrained, description of what was loaded) from --checkpoint or --random-init --config."""
    from ..config import import_plugins
    from ..inference import Pretrained, load
    device = _device(args.device)
    import_plugins(args.imports)
    if args.random_init:
        if not args.config:
            raise ConfigError("--random-init needs --config RECIPE")
        cfg = load_config(args.config, overrides=args.overrides)
        return Pretrained.from_config(cfg, device=device, crop_pct=args.crop_pct), {
            "model": "random_init", "config": args.config}
    if args.config or args.overrides:
        raise ConfigError("--config and --set go with --random-init; a checkpoint carries its own recipe")
    path = ckpt.resolve_checkpoint(args.checkpoint)
    info = {"model": "checkpoint", "checkpoint": os.path.abspath(path)}
    try:
        with open(os.path.join(path, "meta.json")) as f:
            info["step"] = json.load(f).get("step")
    except (OSError, ValueError):
        pass
    return load(path, device=device, crop_pct=args.crop_pct), info


def check_sizes(args: argparse.Namespace) -> None:
    for flag in ("train_samples", "val_samples", "batch_size", "num_workers"):
        if getattr(args, flag) < (0 if flag == "num_workers" else 1):
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= {0 if flag == 'num_workers' else 1}, "
                              f"got {getattr(args, flag)}")


def features(args: argparse.Namespace, model):
    """Mean-pooled features and labels of the train and held-out splits."""
    splits = (("train", args.train_samples), (args.eval_split, args.val_samples))
    # build both sources first: a bad split name fails before any image is rendered
    sources = [(build_split_source(model.cfg, s, num_samples=n, source=args.source), n) for s, n in splits]
    out = []
    for source, n in sources:
        x, y = load_split(source, model.transform, limit=n, batch_size=args.batch_size,
                          num_workers=args.num_workers)
        out.append((extract_features(model.model, x, batch_size=args.batch_size, device=model.device), y))
    return out


def write_json(path: str, result: dict) -> None:
    """Written under a temporary name and renamed: never a half-written results file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)


def default_output(args: argparse.Namespace, info: dict, name: str) -> str:
    if args.output:
        return args.output
    if info.get("checkpoint"):
        return os.path.join(info["checkpoint"], "eval", f"{name}.json")
    stem = os.path.splitext(os.path.basename(args.config))[0]
    return f"{stem}_random_init_{name}.json"


def run_main(parser: argparse.ArgumentParser, name: str, evaluate: Callable, argv: Optional[List[str]],
             check: Optional[Callable] = None) -> int:
    """Parse, check(args) (raise ConfigError early), load, extract, evaluate(args, (xtr, ytr), (xva, yva))
    -> dict, print it and write the JSON."""
    args = parser.parse_args(argv)
    try:
        t0 = time.perf_counter()
        check_sizes(args)
        if check is not None:
            check(args)
        model, info = load_model(args)
        train, held_out = features(args, model)
        result = {**info, "eval_split": args.eval_split, **evaluate(args, train, held_out),
                  "seconds": round(time.perf_counter() - t0, 2)}
        out = default_output(args, info, name)
        write_json(out, result)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    print(f"wrote {out}", file=sys.stderr)
    return 0
