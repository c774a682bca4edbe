"""Checkpoints: a directory per save, written under a temporary name and renamed; `latest` names the newest;
`keep_last` prunes; everything loads with weights_only=True (a pickle that would run code is refused, never
executed). Each checkpoint carries `manifest.json`: the size and sha256 of every file in it, computed while the
files are written and verified when they are read, so a truncated, altered or half-copied checkpoint is
found before it is used. The RNG states of every rank are stored as one uint8 tensor each (numpy's and
python's states are tuples, which weights_only=True does not load)."""
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..runtime.atomic import file_sha256
from ..errors import ConfigError, output_error

LATEST = "latest"
MANIFEST = "manifest.json"
RESUME_FILES = ("model.pt", "optimizer.pt", "trainer.pt")


def step_dir(step: int) -> str:
    return f"step_{step:08d}"


def run_metadata(world: int, precision: str, precision_reason: str = "") -> dict:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    meta = {"git_revision": rev, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "hardware": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "world_size": world, "precision": precision}
    if precision_reason:
        meta["precision_reason"] = precision_reason
    return meta


# -- writing ----------------------------------------------------------------------------------------------

class _Hashing:
    """A binary file that hashes and counts what is written through it (torch.save writes sequentially)."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _write(path: str, fill) -> dict:
    """Write `path` with fill(file) and fsync it; returns its manifest entry (size and sha256)."""
    with open(path, "wb") as f:
        h = _Hashing(f)
        fill(h)
        f.flush()
        os.fsync(f.fileno())
    return {"size": h.size, "sha256": h.sha.hexdigest()}


def save_checkpoint(root: str, step: int, tensors: Dict[str, dict], *, config: dict, meta: dict,
                    extra_files: Optional[Dict[str, str]] = None, keep_last: int = 0) -> str:
    """tensors: file stem -> state (model, optimizer, trainer). extra_files: name -> source path (tokenizer).
    A failed write (disk full, read-only) removes the partial directory and raises OutputError (one line)."""
    final = os.path.join(root, step_dir(step))
    tmp = None
    try:
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=root, prefix=f".{step_dir(step)}.tmp-")
        files: Dict[str, dict] = {}

        def put(name: str, fill) -> None:
            files[name] = _write(os.path.join(tmp, name), fill)

        for stem, state in tensors.items():
            put(f"{stem}.pt", lambda f, state=state: torch.save(state, f))
        put("config.json", lambda f: f.write(json.dumps(config, indent=2).encode()))
        put("meta.json", lambda f: f.write(json.dumps(dict(meta, step=step), indent=2).encode()))
        for name, src in (extra_files or {}).items():
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            with open(src, "rb") as s:
                data = s.read()
            put(name, lambda f, data=data: f.write(data))
        manifest = json.dumps({"version": 1, "step": step, "files": files}, indent=1).encode()
        _write(os.path.join(tmp, MANIFEST), lambda f: f.write(manifest))
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(root)
        _atomic_text(os.path.join(root, LATEST), step_dir(step) + "\n")
    except OSError as e:
        raise output_error(e.filename or final, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if keep_last > 0:
        prune(root, keep_last)
    return final


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_text(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def list_checkpoints(root: str) -> List[str]:
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if d.startswith("step_") and ".tmp-" not in d)


def prune(root: str, keep_last: int) -> None:
    for d in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def stale_temps(root: str) -> List[str]:
    """What killed saves left behind: `.step_*.tmp-*` directories and `.tmp-*` files."""
    if not os.path.isdir(root):
        return []
    return [os.path.join(root, d) for d in sorted(os.listdir(root))
            if (d.startswith(".step_") and ".tmp-" in d) or d.startswith(".tmp-")]


def remove_stale_temps(root: str) -> int:
    found = stale_temps(root)
    for path in found:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass
    return len(found)


# -- checking ---------------------------------------------------------------------------------------------

def _manifest(ckpt_dir: str) -> Optional[dict]:
    """The manifest's file table; None for a checkpoint written before manifests; ConfigError if unreadable."""
    path = os.path.join(ckpt_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            files = json.load(f)["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"checkpoint '{ckpt_dir}': unreadable {MANIFEST} ({type(e).__name__}: {e})") from None
    return files


def check_file(ckpt_dir: str, name: str, files: Optional[dict] = None) -> Optional[str]:
    """What is wrong with one file of a checkpoint (None: present and, with a manifest, of the recorded
    size and checksum)."""
    path = os.path.join(ckpt_dir, name)
    if not os.path.isfile(path):
        return f"{name} is missing"
    if files is None:
        return None
    entry = files.get(name)
    if not isinstance(entry, dict):
        return f"{name} is not in {MANIFEST}"
    size = os.path.getsize(path)
    if size != entry.get("size"):
        return f"{name} has {size} bytes, {entry.get('size')} were written (truncated or altered)"
    if file_sha256(path) != entry.get("sha256"):
        return f"{name} does not match its sha256 in {MANIFEST} (corrupted or altered)"
    return None


def problem(ckpt_dir: str, need=RESUME_FILES) -> Optional[str]:
    """Why `ckpt_dir` is not a complete checkpoint (every file of its manifest, and `need`), or None."""
    if not os.path.isdir(ckpt_dir):
        return "it does not exist"
    try:
        files = _manifest(ckpt_dir)
    except ConfigError as e:
        return e.message.split("': ", 1)[-1]  # without the directory, which the caller names
    if os.path.isfile(os.path.join(ckpt_dir, SHARDED)):  # FSDP: state/ holds the model and optimizer
        need = tuple(n for n in need if n not in ("model.pt", "optimizer.pt")) + (SHARDED,)
    names = list(need) + sorted(set(files or ()) - set(need))
    for name in names:
        why = check_file(ckpt_dir, name, files)
        if why:
            return why
    return None


def find_checkpoint(root: str, need=RESUME_FILES) -> Tuple[Optional[str], Optional[str]]:
    """(the checkpoint to continue from, a warning). `latest` when it names a complete checkpoint; otherwise
    the newest complete one, with a warning saying why. (None, None) when `root` holds no checkpoint;
    ConfigError when it holds some but none is complete."""
    found = list_checkpoints(root)
    if not found:
        return None, None
    named, why = None, None
    latest = os.path.join(root, LATEST)
    if os.path.isfile(latest):
        try:
            with open(latest, encoding="utf-8") as f:
                named = f.read().strip()
        except (OSError, UnicodeDecodeError):
            named = None
        if named and os.sep not in named and named.startswith("step_"):
            why = problem(os.path.join(root, named), need)
            if why is None:
                return os.path.join(root, named), None
            why = f"{LATEST} names {named}, but {why}"
        else:
            why = f"{LATEST} is unreadable"
    else:
        why = f"there is no {LATEST} file"
    failures = []
    for name in reversed(found):
        bad = problem(os.path.join(root, name), need)
        if bad is None:
            return os.path.join(root, name), f"{why}: using the newest complete checkpoint, {name}"
        failures.append(f"{name}: {bad}")
    more = f" (and {len(failures) - 2} more)" if len(failures) > 2 else ""
    raise ConfigError(f"no complete checkpoint in '{root}': {'; '.join(failures[:2])}{more}; move the directory "
                      f"aside to start fresh, or restore a checkpoint")


def latest_checkpoint(root: str) -> Optional[str]:
    """The checkpoint to continue from in `root` (see find_checkpoint; its warning goes to stderr)."""
    path, warning = find_checkpoint(root)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return path


def resolve_checkpoint(path: str) -> str:
    """A step directory, or a run / checkpoints directory holding step directories."""
    if os.path.isfile(os.path.join(path, "model.pt")) or os.path.isfile(os.path.join(path, SHARDED)):
        return path
    for root in (path, os.path.join(path, "checkpoints")):
        if list_checkpoints(root):
            found, warning = find_checkpoint(root, need=("model.pt",))
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            return found
    raise ConfigError(f"no checkpoint at '{path}' (expected a step_* directory with model.pt, or a run "
                      f"directory with checkpoints/step_*)")


# -- reading ----------------------------------------------------------------------------------------------

def load_tensors(ckpt_dir: str, stem: str, map_location="cpu") -> dict:
    """A checkpoint's `<stem>.pt`, checked against the manifest first; every failure is one ConfigError."""
    name = f"{stem}.pt"
    if stem == "model" and not os.path.isfile(os.path.join(ckpt_dir, name)) and \
            os.path.isfile(os.path.join(ckpt_dir, SHARDED)):
        return sharded_model_state(ckpt_dir, map_location)  # train.parallel "fsdp" wrote state/, no model.pt
    why = check_file(ckpt_dir, name, _manifest(ckpt_dir))
    if why:
        raise ConfigError(f"checkpoint '{ckpt_dir}': {why}")
    return read_tensor_file(os.path.join(ckpt_dir, name), map_location)


def read_tensor_file(path: str, map_location="cpu"):
    """torch.load with weights_only=True (quietly); every failure is one ConfigError line."""
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on pickle protocols before it refuses a file
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle that is not plain tensors (never executed)
        raise ConfigError(f"'{path}' is not a readable tensor file ({load_error(path, e)})") from None


def load_error(path: str, e: Exception) -> str:
    """Why torch.load(weights_only=True) failed, in a few words."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return err.strerror or str(err)
    refused = "Weights only load failed" in str(e) or type(e).__name__ == "UnpicklingError"
    if head[:4] == b"PK\x03\x04":
        if refused:
            return ("it holds Python objects other than tensors, which weights_only loading refuses: it was not "
                    "written by this program, or was altered; nothing in it was run")
        return f"a damaged torch.save archive: {(str(e).strip().splitlines() or [type(e).__name__])[0][:160]}"
    if head[:1] == b"\x80" and refused:
        return "a plain pickle, not a torch.save archive: refused, and nothing in it was run"
    return "not a torch.save archive: truncated, random bytes or another format"


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
