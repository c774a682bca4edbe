"""The run directory at start-up. Order matters, so that bad input never costs a run its files:

1. `checkpoint_to_resume`: what --resume continues from (a missing or corrupt `latest` falls back to the newest
   complete checkpoint, with a warning), or the refusal to start over a run's checkpoints without --resume;
2. `read_checkpoint`: the checkpoint read and checked against this model (a checkpoint of another model is one
   line naming the first parameter that differs) -- all in memory;
3. `prepare`: only then is anything written: the directory, config.json, tokenizer files; metrics.jsonl is
   trimmed to the step the run starts from (rows a killed run logged after its last checkpoint would repeat),
   and the temporary directories of saves that were killed are removed.
"""
import json
import os
from typing import Dict, List, Optional, Tuple

from . import checkpoint as ckpt
from ..runtime.atomic import atomic_write_text
from ..errors import ConfigError, output_error

METRICS = "metrics.jsonl"


def checkpoint_to_resume(out: str, resume: bool) -> Tuple[Optional[str], Optional[str]]:
    """(checkpoint directory or None, a warning or None)."""
    root = os.path.join(out, "checkpoints")
    if not resume:
        if ckpt.list_checkpoints(root):
            raise ConfigError(f"'{out}' already holds a run's checkpoints: pass --resume to continue it, or "
                              f"choose another --output-dir")
        return None, None
    return ckpt.find_checkpoint(root)


def _shape(t) -> str:
    return f"[{', '.join(map(str, t.shape))}]" if hasattr(t, "shape") else type(t).__name__


def first_mismatch(theirs: dict, ours: dict) -> Optional[str]:
    """The first parameter (in the model's order) that a state dict lacks or holds in another shape, or the
    first one it has that the model lacks."""
    for name, t in ours.items():
        if name not in theirs:
            return f"'{name}' ({_shape(t)} here) is not in it"
        if tuple(getattr(theirs[name], "shape", ())) != tuple(t.shape):
            return f"'{name}' is {_shape(theirs[name])} there, {_shape(t)} here"
    extra = [k for k in theirs if k not in ours]
    return f"it has '{extra[0]}', which this model lacks" if extra else None


def read_checkpoint(ckpt_dir: str, model, optimizer, device, *, recipe: str = "") -> Dict[str, dict]:
    """The model / optimizer / trainer states of `ckpt_dir`, checked to fit `model` and `optimizer`. A sharded
    (FSDP) checkpoint gives its trainer state only: its shards are read onto this world size in Trainer.resume."""
    from .sharded import is_sharded_checkpoint
    if is_sharded_checkpoint(ckpt_dir):
        return {"trainer": ckpt.load_tensors(ckpt_dir, "trainer")}
    states = {stem: ckpt.load_tensors(ckpt_dir, stem, device if stem != "trainer" else "cpu")
              for stem in ("model", "optimizer", "trainer")}
    if not isinstance(states["model"], dict):
        raise ConfigError(f"checkpoint '{ckpt_dir}': model.pt does not hold a state dict")
    why = first_mismatch(states["model"], model.state_dict())
    if why:
        raise ConfigError(f"checkpoint '{ckpt_dir}' is of another model: {why}; resume it with the recipe it was "
                          f"trained with (its config.json), or choose another --output-dir", file=recipe)
    theirs = [len(g.get("params", ())) for g in states["optimizer"].get("param_groups", [])] \
        if isinstance(states["optimizer"], dict) else None
    ours = [len(g["params"]) for g in optimizer.state_dict()["param_groups"]]
    if theirs != ours:
        raise ConfigError(f"checkpoint '{ckpt_dir}': its optimizer has parameter groups of sizes {theirs}, this "
                          f"recipe's has {ours} (optim.param_groups or frozen parameters differ)", file=recipe)
    trainer = states["trainer"]
    missing = [k for k in ("step", "rng", "scaler") if not isinstance(trainer, dict) or k not in trainer]
    if missing:
        raise ConfigError(f"checkpoint '{ckpt_dir}': trainer.pt lacks {', '.join(missing)}")
    return states


def trim_metrics(path: str, step: int) -> int:
    """Keep the rows of metrics.jsonl up to `step` (and drop a half-written last line); returns how many rows
    were dropped. The file is replaced atomically, and only when something changes."""
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    kept: List[str] = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line)
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(x + "\n" for x in kept))
    return len(lines) - len(kept)


def prepare(out: str, config_text: str, start_step: int, tokenizer=None) -> Dict[str, str]:
    """Write the run directory (rank 0, after every check passed); returns the tokenizer files to copy into
    each checkpoint ({name in the checkpoint: path}). A disk that is full or read-only is one OutputError."""
    extra: Dict[str, str] = {}
    path = out
    try:
        os.makedirs(out, exist_ok=True)
        ckpt.remove_stale_temps(os.path.join(out, "checkpoints"))
        path = os.path.join(out, "config.json")
        atomic_write_text(path, config_text)
        if tokenizer is not None and hasattr(tokenizer, "save"):
            path = os.path.join(out, "tokenizer")
            os.makedirs(path, exist_ok=True)
            for name in tokenizer.save(path):
                extra[f"tokenizer/{name}"] = os.path.join(path, name)
        path = os.path.join(out, METRICS)
        trim_metrics(path, start_step)
    except OSError as e:
        raise output_error(e.filename or path, e) from None
    return extra
