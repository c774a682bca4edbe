"""The command line every evaluation entry point shares (finetune/run_linear_probe.py, run_knn.py,
run_dense_probe.py, run_zero_shot.py, run_image_classifier.py): which model, which data, which samples, where
the results go.

Model: `--checkpoint RUN` (a run directory's latest checkpoint, or one checkpoints/step_* directory) or
`--random-init --config RECIPE` (the baseline); `--set key=value` overrides the recipe in both cases (a
checkpoint's own recipe for --checkpoint: data, views, eval settings; a changed model no longer matches its
weights and says so); `--import MODULE` registers plugin components.

Data: the recipe's own source at split `train` and `--eval-split` (default), or `--train-data` /
`--val-data` (each alone or both): a shard pattern `data/x/{000..009}.tar`, a shard folder or manifest.json
from `preprocess.py images`, an image folder `root/<class>/*.jpg`, or a JSON source object.

Samples: `--train-samples` / `--val-samples` per split, drawn stratified by class (seeded by `--seed`) where
the source tells its labels, at random (seeded) otherwise, never the first N; a generated source is built
with exactly that many samples.

Results: a flat JSON object written to `--output` (default: <checkpoint>/eval/<name>.json, or
<recipe>_random_init_<name>.json here) and printed as the last line of stdout; `primary` names the headline
metric. `--check` only says whether the evaluation applies to this model and data: it prints
{"applicable": true|false, "reason": ...} and exits 0. A user mistake, or running an evaluation that does not
apply, is one line on stderr and exit code 2.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..errors import ConfigError, DataError, entry_point
from ..eval.classes import match_classes
from ..eval.features import EvalData, frozen, mean_pooled, read_split
from ..eval.sources import build_data_source, build_split_source, class_names, source_config, split_source_config
from ..eval.subsets import choose_subset
from ..recipe.config import import_plugins, load_config
from ..training import checkpoint as ckpt

SPLITS = ("train", "val")


class Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes are one line on stderr, exit code 2, like every other user mistake."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def base_parser(prog: str, description: str, *, train_samples: Optional[int] = 2000, val_samples: int = 1000,
                uses_train: bool = True, batch_size: int = 256, batch_help: str = "images per forward pass",
                seed_help: str = "seed of the sample draws and carve-outs") -> argparse.ArgumentParser:
    """The shared flags. train_samples=None: no --train-samples (the whole training data is used, as a
    fine-tuning run reads it); batch_size / batch_help / seed_help: what --batch-size and --seed mean here."""
    p = Parser(prog=prog, description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a run directory (its latest checkpoint) or a checkpoints/step_* dir")
    src.add_argument("--random-init", action="store_true", help="evaluate the recipe's model at random init")
    p.add_argument("--config", help="recipe for --random-init (a checkpoint carries its own)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the recipe (--random-init) or of the checkpoint's recipe (repeatable)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that registers components (repeatable)")
    unused = "" if uses_train else " (unused here: nothing is trained)"
    p.add_argument("--train-data", metavar="DATA", help="training data instead of the recipe's train split: shard "
                   "pattern, shard folder or manifest.json, image folder root/<class>/*, or a JSON source" + unused)
    p.add_argument("--val-data", metavar="DATA", help="held-out data instead of the recipe's --eval-split (same forms)")
    if train_samples is not None:
        p.add_argument("--train-samples", type=int, default=train_samples,
                       help=f"samples of the training data (default {train_samples}; stratified by class){unused}")
    p.add_argument("--val-samples", type=int, default=val_samples,
                   help=f"samples of the held-out data (default {val_samples}; stratified by class)")
    p.add_argument("--eval-split", default="val", help="the recipe source's held-out split (default val)")
    p.add_argument("--allow-class-mismatch", action="store_true", help="score the classes both sides name, "
                   "matched by name, leaving out the others (reported); without it a class on one side only is an "
                   "error")
    p.add_argument("--source", type=int, default=0, help="which of the recipe's data sources (default 0)")
    p.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    p.add_argument("--crop-pct", type=float, default=1.0, help="eval resize = size / crop_pct (default 1.0)")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"{batch_help} (default {batch_size})")
    p.add_argument("--num-workers", type=int, default=0, help="data loader workers for reading images")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--output", help="JSON file for the results (default: <checkpoint>/eval/<name>.json, or "
                                    "<recipe>_random_init_<name>.json in the working directory)")
    p.add_argument("--check", action="store_true", help="only print whether this evaluation applies to the model "
                                                        "and data ({\"applicable\": ..., \"reason\": ...}), exit 0")
    return p


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device here (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: unknown device '{name}' (cpu, cuda, cuda:N or auto)") from None


def load_model(args: argparse.Namespace):
    """(Pretrained, description of what was loaded) from --checkpoint or --random-init --config, with --set."""
    from ..inference import Pretrained, load
    from ..run import build_tokenizer
    device = device_of(args.device)
    import_plugins(args.imports)
    info: Dict[str, Any] = {}
    if args.overrides:
        info["set"] = " ".join(args.overrides)
    if args.random_init:
        if not args.config:
            raise ConfigError("--random-init needs --config RECIPE")
        cfg = load_config(args.config, overrides=args.overrides)
        tokenizer = build_tokenizer(cfg, base_dir=os.path.dirname(args.config))
        model = Pretrained.from_config(cfg, device=device, crop_pct=args.crop_pct, tokenizer=tokenizer)
        return model, {"model": "random_init", "config": args.config, **info}
    if args.config:
        raise ConfigError("--config goes with --random-init; a checkpoint carries its own recipe (change it "
                          "with --set)")
    path = ckpt.resolve_checkpoint(args.checkpoint)
    info = {"model": "checkpoint", "checkpoint": os.path.abspath(path), **info}
    try:
        with open(os.path.join(path, "meta.json")) as f:
            info["step"] = json.load(f).get("step")
    except (OSError, ValueError):
        pass
    return load(path, device=device, crop_pct=args.crop_pct, overrides=args.overrides), info


def add_probe_fit_args(p: argparse.ArgumentParser, *, what: str, grid, max_iter: int) -> None:
    """The L2-regularised L-BFGS fit of the linear and dense probes: its strength is chosen on a carve-out of
    the training side (never on the held-out split)."""
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help=f"share of the {what} carved out to choose the L2 strength (default 0.2)")
    p.add_argument("--l2", type=float, nargs="+", help=f"L2 strengths to try (default {list(grid)})")
    p.add_argument("--max-iter", type=int, default=max_iter,
                   help=f"L-BFGS iterations per fit (default {max_iter})")


def check_probe_fit(args: argparse.Namespace) -> None:
    if not 0.0 < args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.l2 is not None and any(v < 0 for v in args.l2):
        raise ConfigError(f"--l2 strengths must be >= 0, got {args.l2}")
    if args.max_iter < 1:
        raise ConfigError(f"--max-iter must be >= 1, got {args.max_iter}")


def check_sizes(args: argparse.Namespace) -> None:
    for flag in ("train_samples", "val_samples", "batch_size", "num_workers"):
        low = 0 if flag == "num_workers" else 1
        value = getattr(args, flag, None)
        if value is not None and value < low:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= {low}, got {getattr(args, flag)}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")


@dataclass
class Split:
    """One side of an evaluation: the source, which of its samples, and how they were drawn."""
    name: str                      # "train" / "val"
    source: Any
    indices: List[int]
    subset: str                    # "all" / "stratified" / "random"
    data: str                      # what was asked for: the --*-data string, or "recipe:<split>"
    spec: Optional[str] = None
    config: Optional[Dict[str, Any]] = None   # the source object it was built from (a recipe can name it)

    def class_names(self) -> Optional[List[str]]:
        return class_names(self.source, self.spec)

    def first(self) -> Dict[str, Any]:
        """One readable raw sample (to check what the source yields), or {}."""
        for i in self.indices[:16]:
            try:
                raw = self.source[i]
            except DataError:
                continue
            if raw is not None:
                return raw
        return {}


def build_split(args: argparse.Namespace, model: Any, which: str) -> Split:
    """One data side; without --train-samples (a parser that has none) the whole training data."""
    n = getattr(args, "train_samples", None) if which == "train" else args.val_samples
    spec = args.train_data if which == "train" else args.val_data
    if spec:
        config = source_config(spec, flag=f"--{which}-data")
        source = build_data_source(spec, flag=f"--{which}-data")
        data = spec
    else:
        split = "train" if which == "train" else args.eval_split
        config = split_source_config(model.cfg, split, num_samples=n, source=args.source)
        source = build_split_source(model.cfg, split, num_samples=n, source=args.source)
        data = f"recipe:{split}"
    indices, how = choose_subset(source, len(source) if n is None else n,
                                 seed=args.seed + (0 if which == "train" else 1))
    return Split(which, source, indices, how, data, spec, config)


@dataclass
class Context:
    """What an evaluation gets: the parsed flags, the loaded model and the data sides it asked for."""
    args: argparse.Namespace
    model: Any                              # m3i_modular.inference.Pretrained
    info: Dict[str, Any]
    splits: Dict[str, Split] = field(default_factory=dict)
    skipped: int = 0

    def read(self, which: str, *, encode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
             with_seg: bool = False, with_caption: bool = False) -> EvalData:
        """The split's samples through the model's eval view (encoded batch by batch with `encode`)."""
        s = self.splits[which]
        data = read_split(s.source, self.model.transform, s.indices, encode=encode, batch_size=self.args.batch_size,
                          num_workers=self.args.num_workers, with_seg=with_seg, with_caption=with_caption)
        self.skipped += data.skipped
        return data

    def features(self, which: str) -> EvalData:
        """Mean-pooled last-layer features of the split's labelled samples."""
        model, dev = self.model.model, self.model.device
        with frozen(model):
            data = self.read(which, encode=lambda x: mean_pooled(model, x.to(dev)))
        keep = data.labels >= 0  # unlabelled samples cannot be scored
        if int(keep.sum()) == 0:
            raise DataError(f"the {which} data has no labelled samples")
        return data.take(keep)


def image_model_reason(model: Any) -> Optional[str]:
    """Why a model cannot be evaluated on images (no image input), or None."""
    try:
        model.transform
    except ConfigError as e:
        return f"the model takes no images ({e})"
    return None


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{"a": {"b": 1}} -> {"a_b": 1}: every results file is one flat object."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "_"))
        elif isinstance(v, (list, tuple)):
            out[key] = " ".join(str(x) for x in v)
        else:
            out[key] = v
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


def run_main(parser: argparse.ArgumentParser, name: str, evaluate: Callable[[Context], Dict[str, Any]],
             argv: Optional[Sequence[str]], *, check: Optional[Callable] = None,
             applies: Optional[Callable[[Context], Optional[str]]] = None, splits: Sequence[str] = SPLITS,
             primary: str = "") -> int:
    """Parse, check(args) (raise ConfigError early), load the model, build the data sides, applies(ctx) ->
    a reason it does not apply (or None), then evaluate(ctx) -> flat metrics; print and write the JSON.
    evaluate may return an exit code instead (a training run that failed; a rank other than 0 of a
    distributed run, which writes nothing)."""
    args = parser.parse_args(argv)
    return _run(args, name, evaluate, check, applies, splits, primary)


@entry_point()
def _run(args, name, evaluate, check, applies, splits, primary) -> int:
    t0 = time.perf_counter()
    check_sizes(args)
    if check is not None:
        check(args)
    model, info = load_model(args)
    ctx = Context(args, model, info)
    reason = image_model_reason(model)
    if reason is None:
        for which in splits:
            ctx.splits[which] = build_split(args, model, which)
        if applies is not None:
            reason = applies(ctx)
    if args.check:
        print(json.dumps({"eval": name, "applicable": reason is None, "reason": reason or ""}))
        return 0
    if reason is not None:
        raise ConfigError(f"{name} does not apply: {reason}")
    metrics = evaluate(ctx)
    if isinstance(metrics, int):
        return metrics
    result: Dict[str, Any] = {"eval": name, "primary": primary, **info}
    for which, s in ctx.splits.items():
        result[f"{which}_data"], result[f"{which}_subset"] = s.data, s.subset
    if "val" in ctx.splits and not ctx.args.val_data:
        result["eval_split"] = args.eval_split
    result.update(flatten(metrics))
    result.update({"skipped": ctx.skipped, "seed": args.seed, "seconds": round(time.perf_counter() - t0, 2)})
    out = default_output(args, info, name)
    write_json(out, result)
    print(json.dumps(result))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def labels_reason(ctx: Context) -> Optional[str]:
    """Why the data cannot be scored by class (no labels on a side; class names that differ between the sides,
    without --allow-class-mismatch), or None; matched names renumber the held-out labels (eval/classes.py)."""
    from ..eval.subsets import source_labels
    for which, s in ctx.splits.items():
        if s.first().get("label") is not None:
            continue
        labels = source_labels(s.source)
        if not labels or all(y is None for y in labels):
            return f"the {which} data ({s.data}) has no class labels"
    if "train" in ctx.splits and "val" in ctx.splits:  # labels are class positions: match them by name
        try:
            ctx.info.update(match_classes(ctx.splits["train"], ctx.splits["val"],
                                          allow_mismatch=ctx.args.allow_class_mismatch))
        except ConfigError as e:
            return e.message
    return None
