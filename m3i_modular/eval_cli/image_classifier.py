"""Full fine-tuning of an image tower for classification (finetune/run_image_classifier.py is the command
line): the flags' checks, the fine-tuning recipe derived from the loaded model's own (eval/finetune.py),
written to OUTPUT_DIR/finetune_recipe.json and trained by pretrain.py's machinery (m3i_modular.cli) with
--init-from the checkpoint, then top-1 / top-5 of the tuned model on the held-out split."""
import contextlib
import json
import os
import sys
import time

from ..errors import ConfigError
from ..eval import finetune as ft
from ..eval.features import frozen, read_split
from ..recipe.config import apply_set, dump_config
from ..training import checkpoint as ckpt
from .common import device_of, labels_reason

FLAGS = ("lr", "layer_decay", "drop_path", "label_smoothing", "mixup", "cutmix", "mix_prob")


def check(args) -> None:
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
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
    if args.random_init:
        name = os.path.splitext(os.path.basename(args.config))[0] + "_random_init"
    else:
        path = os.path.abspath(ckpt.resolve_checkpoint(args.checkpoint))
        name = os.path.basename(os.path.dirname(os.path.dirname(path)))
    args.output_dir = args.output_dir or os.path.join("runs", "finetune", name)
    args.output = args.output or os.path.join(args.output_dir, "finetune.json")


def applies(ctx):
    reason = labels_reason(ctx)
    if reason is None and not (ctx.args.num_classes or ft.num_classes_of(ctx.splits["train"].source,
                                                                           ctx.splits["train"].spec)):
        reason = "cannot tell how many classes the training data has: pass --num-classes"
    return reason


def derive(ctx) -> dict:
    """The fine-tuning recipe of the loaded model's recipe, with --ft-set applied."""
    args, train = ctx.args, ctx.splits["train"]
    num_classes = args.num_classes or ft.num_classes_of(train.source, train.spec)
    what = ctx.info.get("checkpoint") or f"{args.config} at random init"
    recipe = ft.finetune_recipe(
        ctx.model.cfg, num_classes=num_classes, train_source=train.config, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, layer_decay=args.layer_decay, drop_path=args.drop_path,
        label_smoothing=args.label_smoothing, mixup=args.mixup, cutmix=args.cutmix, mix_prob=args.mix_prob,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, crop_scale=args.crop_scale,
        seed=args.seed, device=args.device, precision=args.precision, num_workers=args.num_workers,
        save_every=args.save_every, description=f"fine-tuning of {what}")
    if args.imports:  # the derived recipe names every plugin it needs (a data source, a component)
        recipe["imports"] = list(dict.fromkeys(list(recipe.get("imports", [])) + list(args.imports)))
    for assignment in args.ft_overrides:
        apply_set(recipe, assignment)
    recipe["train"]["output_dir"] = args.output_dir
    return recipe


def write_recipe(recipe: dict, out: str, resume: bool) -> str:
    """OUTPUT_DIR/finetune_recipe.json; a run already there is continued only with --resume and the same flags."""
    path = os.path.join(out, "finetune_recipe.json")
    if ckpt.list_checkpoints(os.path.join(out, "checkpoints")):
        if not resume:
            raise ConfigError(f"'{out}' already holds a run's checkpoints: pass --resume to continue it, or "
                              f"choose another --output-dir")
        if os.path.isfile(path):
            with open(path) as f:
                before = json.load(f)
            now = json.loads(dump_config(recipe))
            for r in (before, now):  # a moved run directory is the same run
                r.get("train", {}).pop("output_dir", None)
            if before != now:
                raise ConfigError(f"--resume: the flags differ from those of the run in '{out}' (see {path}); "
                                  f"use another --output-dir")
    os.makedirs(out, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:  # every rank writes the same bytes; the rename is atomic
        f.write(dump_config(recipe))
    os.replace(tmp, path)
    return path


def evaluate(ctx):
    args, out = ctx.args, ctx.args.output_dir
    recipe = derive(ctx)
    path = write_recipe(recipe, out, args.resume)
    from .. import cli
    t0 = time.perf_counter()
    pre_argv = ["--config", path, "--output-dir", out, "--resume"]
    if ctx.info.get("checkpoint"):
        pre_argv += ["--init-from", ctx.info["checkpoint"]]
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the results line
        rc = cli.main(pre_argv)
    if rc != 0 or int(os.environ.get("RANK", "0")) != 0:
        return rc
    t1 = time.perf_counter()
    from ..inference import load
    tuned = load(out, device=device_of(args.device), crop_pct=args.crop_pct)
    model, dev, val = tuned.model, tuned.device, ctx.splits["val"]
    with frozen(model):
        data = read_split(val.source, tuned.transform, val.indices, batch_size=256, num_workers=args.num_workers or 0,
                          encode=lambda x: ft.classifier_logits(model, x.to(dev)))
    ctx.skipped += data.skipped
    keep = data.labels >= 0  # unlabelled samples cannot be scored
    top = ft.topk_accuracy(data.x[keep], data.labels[keep])
    with open(os.path.join(ckpt.resolve_checkpoint(out), "meta.json")) as f:
        steps = json.load(f).get("step")
    return {"finetune_top1": top["top1"], "finetune_top5": top["top5"], "n_val": int(keep.sum()),
            "finetune_steps": steps, "batch_size": recipe["train"]["batch_size"],
            **{k: getattr(args, k) for k in FLAGS}, "num_classes": recipe["model"]["objectives"][ft.OBJECTIVE]
            ["target_embedding"]["num_classes"], "run_dir": os.path.abspath(out),
            "train_seconds": round(t1 - t0, 2), "eval_seconds": round(time.perf_counter() - t1, 2)}
