"""`pretrain.py`: train a recipe. User mistakes end in one line on stderr and exit code 2.

Arguments are parsed before torch is imported (`--help` answers at once)."""
import argparse
import json
import os
import sys
from typing import List, Optional

from .config import dump_config, load_config
from .errors import ConfigError, DataError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pretrain.py", description="Train a pretraining recipe.")
    p.add_argument("--config", required=True, help="recipe file (models/*.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, typed like the value it replaces (repeatable)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module (or .py file) that registers components (repeatable)")
    p.add_argument("--output-dir", help="run directory (beats train.output_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint, if any")
    p.add_argument("--init-from", metavar="CKPT", help="initialise matching modules from a checkpoint: ours, a "
                   "timm ViT or open_clip file, a Hugging Face BERT / ViT directory (see convert/pretrained.py)")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop after this step with a checkpoint (a time-limited job); --resume continues")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, parameters per component and FLOPs per step, then exit")
    return p.parse_args(argv)


def init_from(model, path: str) -> dict:
    """Load into `model` (an nn.Module) the tensors of a checkpoint (any format --init-from reads, under our key
    names) whose names and shapes match; report loaded, skipped and newly initialised."""
    from .convert.pretrained import load_pretrained
    src = load_pretrained(path, model)
    own = model.state_dict()
    loaded = [k for k, v in src.items() if k in own and own[k].shape == v.shape]
    skipped = sorted(set(src) - set(loaded))
    new = sorted(set(own) - set(loaded))
    model.load_state_dict({k: src[k] for k in loaded}, strict=False)
    if hasattr(model, "after_init_from"):
        model.after_init_from()
    return {"loaded": len(loaded), "skipped": skipped, "new": new}


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distributed = sys.modules.get(f"{__package__}.distributed")
        if distributed is not None:  # not imported: no process group to leave
            distributed.cleanup()


def _main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides=args.overrides, imports=args.imports)
    from . import checkpoint as ckpt
    from . import runtime
    from .checkpoint import seed_everything
    from .distributed import init_distributed
    from .run import build_optim, build_run, describe, run_flops
    from .trainer import Trainer
    env = init_distributed(cfg["train"].get("device", "auto") if isinstance(cfg["train"], dict) else "auto")
    run = build_run(cfg, world=env.world)
    if args.dry_run:
        if env.is_main:
            print(describe(run))
        return 0
    out = args.output_dir or run.train.output_dir
    root = os.path.join(out, "checkpoints")
    latest = ckpt.latest_checkpoint(root) if args.resume else None
    if not args.resume and ckpt.list_checkpoints(root):
        raise ConfigError(f"'{out}' already holds a run's checkpoints: pass --resume to continue it, or choose "
                          f"another --output-dir")
    if args.init_from and latest is None:
        from .convert.pretrained import detect_format
        detect_format(args.init_from)  # fail before writing anything
    opt, schedule = build_optim(run)  # validates optim.param_groups against the model: before writing
    cfg = dict(cfg, train=dict(cfg["train"], output_dir=out))
    resolved = json.loads(dump_config(cfg))
    extra = {}
    if env.is_main:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            f.write(dump_config(cfg))
        if run.tokenizer is not None and hasattr(run.tokenizer, "save"):
            tok_dir = os.path.join(out, "tokenizer")
            os.makedirs(tok_dir, exist_ok=True)
            for name in run.tokenizer.save(tok_dir):
                extra[f"tokenizer/{name}"] = os.path.join(tok_dir, name)
    seed_everything(run.train.seed + 7919 * env.rank)  # runtime randomness differs per rank
    runtime.apply(run.train, is_main=env.is_main)  # torch threads (printed) and attention kernels
    flops = run_flops(run, env.device, env.world, strict=False) if env.is_main else None  # on the host copy
    trainer = Trainer(model=run.model, optimizer=opt, schedule=schedule, dataset=run.dataset,
                      collate=run.collate, train=run.train, env=env, config=resolved, output_dir=out,
                      extra_files=extra, monitors=run.monitors)
    trainer.flops = flops  # metrics.jsonl: flops_per_step, flops_per_s, mfu
    if latest is not None:
        trainer.resume(latest)
        if env.is_main:
            print(f"resumed from {latest} at step {trainer.step}", file=sys.stderr)
    elif args.init_from:
        report = init_from(run.model, args.init_from)
        if env.is_main:
            print(f"init-from {args.init_from}: loaded {report['loaded']} tensors, skipped "
                  f"{len(report['skipped'])} {report['skipped'][:8]}, new {len(report['new'])} "
                  f"{report['new'][:8]}", file=sys.stderr)
    last = trainer.train(stop_at=args.stop_at)
    if env.is_main and last:
        print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in last.items()}))
    return 0
