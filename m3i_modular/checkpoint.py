"""Checkpoints: a directory per save, written under a temporary name and renamed; `latest` names the newest;
`keep_last` prunes; everything loads with weights_only=True. The RNG states of every rank are stored as one
uint8 tensor each (numpy's and python's states are tuples, which weights_only=True does not load)."""
import json
import os
import platform
import random
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

import numpy as np
import torch

from .errors import ConfigError

LATEST = "latest"


def step_dir(step: int) -> str:
    return f"step_{step:08d}"


def _atomic_text(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run_metadata(world: int, precision: str) -> dict:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {"git_revision": rev, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "hardware": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "world_size": world, "precision": precision}


def save_checkpoint(root: str, step: int, tensors: Dict[str, dict], *, config: dict, meta: dict,
                    extra_files: Optional[Dict[str, str]] = None, keep_last: int = 0) -> str:
    """tensors: file stem -> state (model, optimizer, trainer). extra_files: name -> source path (tokenizer)."""
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, step_dir(step))
    tmp = tempfile.mkdtemp(dir=root, prefix=f".{step_dir(step)}.tmp-")
    try:
        for stem, state in tensors.items():
            torch.save(state, os.path.join(tmp, f"{stem}.pt"))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(dict(meta, step=step), f, indent=2)
        for name, src in (extra_files or {}).items():
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            shutil.copyfile(src, os.path.join(tmp, name))
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic_text(os.path.join(root, LATEST), step_dir(step) + "\n")
    if keep_last > 0:
        prune(root, keep_last)
    return final


def list_checkpoints(root: str) -> List[str]:
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if d.startswith("step_") and ".tmp-" not in d)


def prune(root: str, keep_last: int) -> None:
    for d in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def latest_checkpoint(root: str) -> Optional[str]:
    path = os.path.join(root, LATEST)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        name = f.read().strip()
    full = os.path.join(root, name)
    return full if os.path.isdir(full) else None


def resolve_checkpoint(path: str) -> str:
    """A step directory, or a run / checkpoints directory whose `latest` names one."""
    if os.path.isfile(os.path.join(path, "model.pt")) or os.path.isfile(os.path.join(path, SHARDED)):
        return path
    for root in (path, os.path.join(path, "checkpoints")):
        found = latest_checkpoint(root)
        if found:
            return found
    raise ConfigError(f"no checkpoint at '{path}' (expected a step_* directory with model.pt, or a run "
                      f"directory with checkpoints/latest)")


def load_tensors(ckpt_dir: str, stem: str, map_location="cpu") -> dict:
    path = os.path.join(ckpt_dir, f"{stem}.pt")
    if stem == "model" and not os.path.isfile(path) and os.path.isfile(os.path.join(ckpt_dir, SHARDED)):
        return sharded_model_state(ckpt_dir, map_location)
    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint '{ckpt_dir}' has no {stem}.pt (incomplete or not a checkpoint)")
    return torch.load(path, map_location=map_location, weights_only=True)


SHARDED = os.path.join("state", ".metadata")  # train.parallel "fsdp" writes state/ (sharded.py), no model.pt


def sharded_model_state(ckpt_dir: str, map_location="cpu") -> dict:
    """The whole model of a sharded checkpoint as one state dict, read in this process (no process group)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
    sd: dict = {}
    _load_state_dict(sd, storage_reader=FileSystemReader(os.path.join(ckpt_dir, "state")),
                     planner=_EmptyStateDictLoadPlanner(keys={"model"}), no_dist=True)
    return {k: v.to(map_location) for k, v in sd["model"].items()}


def load_config_json(ckpt_dir: str) -> dict:
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        return json.load(f)


# -- random number generators ---------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> torch.Tensor:
    """This process's RNG states as one uint8 tensor (torch CPU, numpy, python; CUDA when present).

    Layout: int64 n, n int64 sizes, then the n parts' bytes."""
    parts = [torch.get_rng_state()]
    key, pos = np.random.get_state()[1:3]
    parts.append(torch.from_numpy(np.append(key.astype(np.int64), pos).astype(np.int64)).view(torch.uint8))
    py = random.getstate()[1]
    parts.append(torch.tensor(py, dtype=torch.int64).view(torch.uint8))
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_rng_state())
    sizes = torch.tensor([p.numel() for p in parts], dtype=torch.int64).view(torch.uint8)
    return torch.cat([torch.tensor([len(parts)], dtype=torch.int64).view(torch.uint8), sizes] + parts)


def set_rng_state(state: torch.Tensor) -> None:
    """Restore what rng_state() packed."""
    n = int(state[:8].view(torch.int64))
    sizes = state[8:8 + 8 * n].view(torch.int64).tolist()
    off, parts = 8 + 8 * n, []
    for s in sizes:
        parts.append(state[off:off + s])
        off += s
    torch.set_rng_state(parts[0].clone())
    np_vals = parts[1].clone().view(torch.int64).numpy()
    np.random.set_state(("MT19937", np_vals[:-1].astype(np.uint32), int(np_vals[-1]), 0, 0.0))
    random.setstate((3, tuple(parts[2].clone().view(torch.int64).tolist()), None))
    if len(parts) > 3 and torch.cuda.is_available():
        torch.cuda.set_rng_state(parts[3].clone())
