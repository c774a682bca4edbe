"""`pretrain.py`: train a recipe. User mistakes end in one line on stderr and exit code 2; a run stopped by
train.max_bad_steps in exit code 3; SIGINT / SIGTERM in a checkpoint and exit code 130 / 143.

Arguments are parsed, and the recipe's top level and train section checked, before torch is imported
(`--help` and those errors answer at once)."""
import argparse
import errno
import json
import shlex
import sys
from typing import List, Optional

from .recipe.config import dump_config, load_config
from .errors import ConfigError, DataError, Interrupted, OutputError, RunStopped, output_error

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


class OneLineParser(argparse.ArgumentParser):
    """A command-line mistake is one line too (argparse would print the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a step number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a step >= 1, got {value}")
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineParser(prog="pretrain.py", description="Train a pretraining recipe.")
    p.add_argument("--config", help="recipe file (models/*.json); required unless --list, --list-recipes or "
                   "--explain")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, typed like the value it replaces (repeatable)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module (or .py file) that registers components (repeatable)")
    p.add_argument("--output-dir", help="run directory (beats train.output_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint, if any")
    p.add_argument("--init-from", metavar="CKPT", help="initialise matching modules from a checkpoint: ours, a "
                   "timm ViT or open_clip file, a Hugging Face BERT / ViT directory (see convert/pretrained.py)")
    p.add_argument("--stop-at", type=positive_int, metavar="STEP",
                   help="stop after this step with a checkpoint (a time-limited job); --resume continues")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, parameters per component and FLOPs per step, then exit")
    p.add_argument("--list", action="store_true", help="list every registry's components with a one-line doc")
    p.add_argument("--list-recipes", nargs="?", const="", metavar="DIR",
                   help="list the recipes (models/*.json, or DIR) with their descriptions")
    p.add_argument("--explain", metavar="NAME", help="a component's keys, types and defaults (NAME or FAMILY.NAME, "
                   "e.g. pool, decoder.pool), or a recipe section's (train, optim, ...)")
    args = p.parse_args(argv)
    args.discover = args.list or args.list_recipes is not None or args.explain is not None
    if args.config is None and not args.discover:
        p.error("the following arguments are required: --config (or --list, --list-recipes, --explain NAME)")
    return args


def init_from(model, path: str) -> dict:
    """Load into `model` (an nn.Module) the tensors of a checkpoint (any format --init-from reads, under our key
    names) whose names and shapes match; report loaded, skipped and newly initialised. A source of which no
    tensor matches is an error (it is another model, or the wrong file)."""
    from .convert.pretrained import load_pretrained
    src = load_pretrained(path, model)
    own = model.state_dict()
    loaded = [k for k, v in src.items() if k in own and own[k].shape == v.shape]
    skipped = sorted(set(src) - set(loaded))
    new = sorted(set(own) - set(loaded))
    if not loaded:
        from .training.rundir import first_mismatch
        raise ConfigError(f"--init-from '{path}': none of its {len(src)} tensors matches this model by name and "
                          f"shape ({first_mismatch(src, own)})")
    model.load_state_dict({k: src[k] for k in loaded}, strict=False)
    if hasattr(model, "after_init_from"):
        model.after_init_from()
    return {"loaded": len(loaded), "skipped": skipped, "new": new}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    leave_group = True
    try:
        return _main(args, argv)
    except (ConfigError, DataError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except Interrupted as e:
        leave_group = False  # no goodbye to ranks that may be inside a collective
        print("interrupted again: exited at once, without a checkpoint", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        leave_group = False
        print("interrupted before the first step: no checkpoint", file=sys.stderr)
        return 130
    except OSError as e:  # a write during training: the disk filled up, or the directory went away
        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"error: {output_error(e.filename or '', e)}", file=sys.stderr)
        return 2
    finally:
        distributed = sys.modules.get(f"{__package__}.distributed")
        if distributed is not None and leave_group:  # not imported: no process group to leave
            distributed.cleanup()


def _main(args: argparse.Namespace, argv: List[str]) -> int:
    if args.discover:
        from .recipe.discover import run
        return run(args)
    cfg = load_config(args.config, overrides=args.overrides, imports=args.imports)
    from .registry import config_path
    from .recipe.sections import TrainConfig
    with config_path("", file=args.config, absolute=True):
        TrainConfig.from_config(cfg["train"])  # its mistakes answer before torch loads
    from .training import rundir
    from .runtime import threads as runtime
    from .training.checkpoint import seed_everything
    from .runtime.distributed import init_distributed
    from .run import build_optim, build_run, describe, run_flops
    from .training.trainer import Trainer
    env = init_distributed(cfg["train"].get("device", "auto") if isinstance(cfg["train"], dict) else "auto")
    run = build_run(cfg, world=env.world)  # every check of the recipe, before anything is written
    if args.dry_run:
        text = describe(run)  # on every rank: the FLOP count's forward may hold a collective
        if env.is_main:
            print(text)
        return 0
    out = args.output_dir or run.train.output_dir
    resume_from, warning = rundir.checkpoint_to_resume(out, args.resume)
    if args.init_from and resume_from is None:
        from .convert.pretrained import detect_format
        detect_format(args.init_from)  # fail before writing anything
    opt, schedule = build_optim(run)  # validates optim.param_groups against the model: before writing
    cfg = dict(cfg, train=dict(cfg["train"], output_dir=out))
    text = dump_config(cfg)
    seed_everything(run.train.seed + 7919 * env.rank)  # runtime randomness differs per rank
    threads = runtime.apply(run.train)  # torch threads and attention kernels; the line is printed below
    # every rank counts (the same first samples): a target's all_reduce inside the counted forward would
    # otherwise wait for ranks that are already building DDP (a deadlock under torchrun)
    flops = run_flops(run, env.device, env.world, strict=False, quiet=not env.is_main)  # on the host copy
    trainer = Trainer(model=run.model, optimizer=opt, schedule=schedule, dataset=run.dataset,
                      collate=run.collate, train=run.train, env=env, config=json.loads(text), output_dir=out,
                      monitors=run.monitors)
    trainer.flops = flops  # metrics.jsonl: flops_per_step, flops_per_s, mfu
    report = None
    if resume_from is not None:
        trainer.resume(resume_from, rundir.read_checkpoint(resume_from, run.model, opt, env.device,
                                                           recipe=args.config))
    elif args.init_from:
        report = init_from(run.model, args.init_from)
    if env.is_main:
        trainer.extra_files = rundir.prepare(out, text, trainer.step, run.tokenizer)
        _announce(run, trainer, out, args, resume_from, warning, report, threads)
    last = trainer.train(stop_at=args.stop_at)
    if env.is_main and trainer.skips.skipped:
        print(trainer.skips.summary(), file=sys.stderr)  # never only in a file
    if trainer.stop_signal:
        if env.is_main:
            from .training.signals import signal_name
            cmd = ["python", "pretrain.py"] + argv + ([] if args.resume else ["--resume"])
            print(f"interrupted by {signal_name(trainer.stop_signal)} at step {trainer.step}: saved "
                  f"{trainer.last_checkpoint}; resume with: {shlex.join(cmd)}", file=sys.stderr)
        return 128 + trainer.stop_signal
    if env.is_main and last:
        print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in last.items()}))
    return 0


def _announce(run, trainer, out: str, args, resume_from, warning, report, threads: str) -> None:
    """What the run is about to do, before its first step (stderr)."""
    import os
    from .run import parameter_table
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if warning:
        say(f"warning: {warning}")
    say(f"run directory: {out}")
    say(f"precision: {trainer.precision} ({trainer.precision_reason})")
    say(threads)
    say("parameters: " + ", ".join(f"{k} {v:,d}" for k, v in parameter_table(run.model).items()))
    if report is not None:
        say(f"init-from {args.init_from}: loaded {report['loaded']} tensors, skipped {len(report['skipped'])} "
            f"{report['skipped'][:8]}, new {len(report['new'])} {report['new'][:8]}")
    total = run.train.total_steps
    if resume_from is not None:
        say(f"resuming from step {trainer.step} ({resume_from})")
    elif args.resume:
        say(f"no checkpoint in {os.path.join(out, 'checkpoints')}: starting fresh at step 0 of {total}")
    else:
        say(f"starting at step 0 of {total}")
