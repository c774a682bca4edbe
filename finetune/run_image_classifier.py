"""Full fine-tuning of a checkpoint's image tower (or of a recipe's tower at random init, the baseline) for image
classification, the MAE / BEiT protocol at our scale: layer-wise lr decay, drop-path, label smoothing,
mixup / cutmix, warmup + cosine; top-1 / top-5 on the held-out split.

It trains THROUGH THE PRETRAINING TRAINER: a fine-tuning recipe is derived from the checkpoint's own config
(m3i_modular/eval/finetune.py), written to OUTPUT_DIR/finetune_recipe.json and run by pretrain.py's machinery
with --init-from the checkpoint, so resume, checkpoints, metrics.jsonl and DDP are the pretraining ones.

    python finetune/run_image_classifier.py --checkpoint runs/mae_vit --steps 300 --output-dir runs/mae_ft
    python finetune/run_image_classifier.py --random-init --config models/mae_vit.json --output-dir runs/rand_ft
    python finetune/run_image_classifier.py --checkpoint runs/x --train-data data/train --val-data data/val
    torchrun --standalone --nproc_per_node 2 finetune/run_image_classifier.py --checkpoint runs/x ...

The results (flat JSON: top1, top5, steps, ...) go to --output (default OUTPUT_DIR/finetune.json) and are
printed as the last line of stdout. --resume continues an interrupted fine-tuning (or only re-scores a finished
one). --set KEY=VALUE overrides a value of the source recipe (as in the other evaluation entry points), --ft-set
KEY=VALUE one of the derived fine-tuning recipe (e.g. train.precision=fp32).
"""
import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

import torch  # noqa: E402

from m3i_modular import checkpoint as ckpt  # noqa: E402
from m3i_modular.config import apply_set, dump_config, import_plugins, load_config  # noqa: E402
from m3i_modular.errors import ConfigError, DataError  # noqa: E402
from m3i_modular.eval import finetune as ft  # noqa: E402
from m3i_modular.registry import DATASETS, build, config_path  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_image_classifier.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a pretraining run directory (its latest checkpoint) or a step_* dir")
    src.add_argument("--random-init", action="store_true", help="fine-tune the recipe's tower from random init")
    p.add_argument("--config", help="recipe for --random-init (a checkpoint carries its own)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the source recipe (the --random-init recipe or the checkpoint's "
                        "config; a changed tower loads only its matching tensors) before deriving (repeatable)")
    p.add_argument("--ft-set", dest="ft_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the derived fine-tuning recipe, e.g. train.precision=fp32 (repeatable)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that registers components (repeatable)")
    p.add_argument("--train-data", help="training data in place of the recipe's source at split train: a "
                                        "class-folder tree, shards (folder, pattern, manifest) or a JSON source")
    p.add_argument("--val-data", help="held-out data in place of the recipe's source at --eval-split")
    p.add_argument("--source", type=int, default=0, help="which of the recipe's data sources (default 0)")
    p.add_argument("--eval-split", default="val", help="held-out split of the recipe's source (default val)")
    p.add_argument("--val-samples", type=int, default=1000,
                   help="held-out images scored, a seeded random subset when the split is larger (default 1000)")
    p.add_argument("--num-classes", type=int, help="classes (default: what the training source says)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    p.add_argument("--lr", type=float, default=4e-3, help="base lr at batch 256, scaled linearly (default 4e-3)")
    p.add_argument("--layer-decay", type=float, default=0.75, help="layer-wise lr decay (default 0.75; 1 = off)")
    p.add_argument("--drop-path", type=float, default=0.1, help="stochastic depth of the last block (default 0.1)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="(default 0.1)")
    p.add_argument("--mixup", type=float, default=0.8, help="mixup Beta alpha, 0 = off (default 0.8)")
    p.add_argument("--cutmix", type=float, default=1.0, help="cutmix Beta alpha, 0 = off (default 1.0)")
    p.add_argument("--mix-prob", type=float, default=1.0,
                   help="share of batches mixed (default 1.0; at a few hundred steps 0.3 did better, README)")
    p.add_argument("--warmup-steps", type=int, default=20, help="linear warmup, then cosine (default 20)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    p.add_argument("--crop-scale", type=float, default=0.5,
                   help="smallest random-resized-crop area share of the train view (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="train.seed of the fine-tuning run (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="(default: the source recipe's)")
    p.add_argument("--num-workers", type=int, help="data loader workers (default: the source recipe's)")
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (default: the last only)")
    p.add_argument("--output-dir", help="the fine-tuning run directory (default runs/finetune/<source name>)")
    p.add_argument("--output", help="results JSON (default OUTPUT_DIR/finetune.json)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir if it has one")
    return p.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    positive = ("steps", "batch_size", "val_samples")
    for name in positive:
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0 or not 0 < args.layer_decay <= 1:
        raise ConfigError(f"--lr must be > 0 and --layer-decay in (0, 1], got {args.lr} and {args.layer_decay}")
    if not 0 <= args.drop_path < 1 or not 0 <= args.label_smoothing < 1:
        raise ConfigError("--drop-path and --label-smoothing must be in [0, 1)")
    if args.mixup < 0 or args.cutmix < 0 or not 0 <= args.mix_prob <= 1:
        raise ConfigError("--mixup and --cutmix must be >= 0 and --mix-prob in [0, 1]")
    if args.warmup_steps < 0 or args.save_every < 0 or not 0 < args.crop_scale <= 1:
        raise ConfigError("--warmup-steps and --save-every must be >= 0 and --crop-scale in (0, 1]")
    if args.num_classes is not None and args.num_classes < 2:
        raise ConfigError(f"--num-classes must be >= 2, got {args.num_classes}")
    if args.random_init and not args.config:
        raise ConfigError("--random-init needs --config RECIPE")
    if args.checkpoint and args.config:
        raise ConfigError("--config goes with --random-init; a checkpoint carries its own recipe")


def source_recipe(args: argparse.Namespace):
    """(the pretraining recipe, the checkpoint to --init-from or None, a short name)."""
    import_plugins(args.imports)
    if args.random_init:
        cfg = load_config(args.config, overrides=args.overrides)
        return cfg, None, os.path.splitext(os.path.basename(args.config))[0] + "_random_init"
    path = ckpt.resolve_checkpoint(args.checkpoint)
    try:
        cfg = ckpt.load_config_json(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"checkpoint '{path}' has no readable config.json ({e})") from None
    import_plugins(cfg.get("imports", []), file=os.path.join(path, "config.json"))
    for assignment in args.overrides:
        apply_set(cfg, assignment)
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return cfg, path, os.path.basename(run_dir)


def build_source(spec: dict, what: str):
    from m3i_modular.data import sources as _sources  # noqa: F401  (registration)
    with config_path(what, absolute=True):
        return build(DATASETS, {k: v for k, v in spec.items() if k != "weight"})


class Subset:
    """A seeded random subset of a source (never its first N: class-sorted data would give one class)."""

    def __init__(self, source, n: int, seed: int = 0):
        self.source = source
        total = len(source)
        if n >= total:
            self.index = list(range(total))
        else:
            self.index = sorted(torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].tolist())

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.source[self.index[i]]


def write_json(path: str, obj: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def prepare(args: argparse.Namespace):
    """Everything checked and derived before anything is written: (recipe, init path, out dir, val source)."""
    src, init, name = source_recipe(args)
    if args.train_data:
        train_spec = ft.source_spec(args.train_data)
    else:
        train_spec = ft.split_source(src, "train", source=args.source)
    if args.val_data:
        val_spec = ft.source_spec(args.val_data)
    else:
        val_spec = ft.split_source(src, args.eval_split, source=args.source)
        if "num_samples" in val_spec:  # generated sources: render only what is scored
            val_spec["num_samples"] = args.val_samples
    train_source = build_source(train_spec, "--train-data" if args.train_data else "data.sources[0]")
    val_source = build_source(val_spec, "--val-data" if args.val_data else "data.sources[0]")
    num_classes = args.num_classes or ft.num_classes_of(train_source)
    if not num_classes:
        raise ConfigError("cannot tell how many classes the training data has: pass --num-classes")
    recipe = ft.finetune_recipe(
        src, num_classes=num_classes, train_source=train_spec, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, layer_decay=args.layer_decay, drop_path=args.drop_path, label_smoothing=args.label_smoothing,
        mixup=args.mixup, cutmix=args.cutmix, mix_prob=args.mix_prob, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, crop_scale=args.crop_scale, seed=args.seed, device=args.device,
        precision=args.precision, num_workers=args.num_workers, save_every=args.save_every,
        description=f"fine-tuning of {name}")
    if args.imports:  # the derived recipe names every plugin it needs (a data source, a component)
        recipe["imports"] = list(dict.fromkeys(list(recipe.get("imports", [])) + list(args.imports)))
    for assignment in args.ft_overrides:
        apply_set(recipe, assignment)
    out = args.output_dir or os.path.join("runs", "finetune", name)
    recipe["train"]["output_dir"] = out
    return recipe, init, out, val_source, num_classes


def evaluate(out: str, val_source, args: argparse.Namespace) -> dict:
    from m3i_modular.eval.features import load_split
    from m3i_modular.inference import load
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    if device == "auto":
        device = "cpu"
    model = load(out, device=device)
    subset = Subset(val_source, args.val_samples, seed=0)  # the same images for every run and seed
    x, y = load_split(subset, model.transform, batch_size=256, num_workers=args.num_workers or 0)
    logits = ft.classifier_logits(model.model, x, device=model.device)
    return {**ft.topk_accuracy(logits, y), "n_val": int(len(y))}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    try:
        check(args)
        recipe, init, out, val_source, num_classes = prepare(args)
        recipe_path = os.path.join(out, "finetune_recipe.json")
        if ckpt.list_checkpoints(os.path.join(out, "checkpoints")):
            if not args.resume:
                raise ConfigError(f"'{out}' already holds a run's checkpoints: pass --resume to continue it, or "
                                  f"choose another --output-dir")
            if os.path.isfile(recipe_path):
                with open(recipe_path) as f:
                    before = json.load(f)
                now = json.loads(dump_config(recipe))
                for r in (before, now):  # a moved run directory is the same run
                    r.get("train", {}).pop("output_dir", None)
                if before != now:
                    raise ConfigError(f"--resume: the flags differ from those of the run in '{out}' "
                                      f"(see {recipe_path}); use another --output-dir")
        os.makedirs(out, exist_ok=True)
        tmp = f"{recipe_path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:  # every rank writes the same bytes; the rename is atomic
            f.write(dump_config(recipe))
        os.replace(tmp, recipe_path)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from m3i_modular import cli
    pre_argv = ["--config", recipe_path, "--output-dir", out, "--resume"]
    if init is not None:
        pre_argv += ["--init-from", init]
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the results line
        rc = cli.main(pre_argv)
    if rc != 0:
        return rc
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    t1 = time.perf_counter()
    try:
        scores = evaluate(out, val_source, args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    steps = None
    try:
        with open(os.path.join(ckpt.resolve_checkpoint(out), "meta.json")) as f:
            steps = json.load(f).get("step")
    except (OSError, ValueError, ConfigError):
        pass
    result = {**scores, "steps": steps, "batch_size": recipe["train"]["batch_size"],
              "lr": args.lr, "layer_decay": args.layer_decay, "drop_path": args.drop_path,
              "label_smoothing": args.label_smoothing, "mixup": args.mixup, "cutmix": args.cutmix,
              "seed": args.seed, "num_classes": num_classes,
              "model": "random_init" if init is None else "checkpoint",
              "checkpoint": "" if init is None else os.path.abspath(init),
              "config": args.config or "", "run_dir": os.path.abspath(out),
              "train_seconds": round(t1 - t0, 2), "eval_seconds": round(time.perf_counter() - t1, 2),
              "seconds": round(time.perf_counter() - t0, 2)}
    output = args.output or os.path.join(out, "finetune.json")
    write_json(output, result)
    print(json.dumps(result))
    print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
