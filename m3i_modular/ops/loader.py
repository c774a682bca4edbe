"""Build and load custom C++/CUDA operators, JIT (ninja) or ahead of time, into a cache directory.

An op is described by an `OpSpec` (name + sources + flags). Its library registers itself with
TORCH_LIBRARY, so loading it is `torch.ops.load_library(path)`: a prebuilt library needs no compiler.
Builds live in  $M3I_OPS_CACHE (default ~/.cache/m3i_modular/ops) / <name>-<key>/<name>.so, where <key>
hashes the sources, flags, target archs and torch/CUDA versions, so a stale build is never loaded.

Reuse for your own op:
    spec = OpSpec(name="my_op", sources=(str(here / "my_op.cpp"), str(here / "my_op.cu")))
    load(spec)            # builds on first use (needs nvcc + ninja), later just loads
    torch.ops.my_op.forward(...)
`scripts/build_ops.py` builds every op listed in `known_ops()` ahead of time.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import torch


class OpBuildError(RuntimeError):
    """An op could not be built or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class OpSpec:
    name: str                               # library name (also its TORCH_LIBRARY namespace by convention)
    sources: Tuple[str, ...]                # .cpp / .cu files; headers next to them are tracked by ninja
    extra_cflags: Tuple[str, ...] = ("-O3",)
    extra_cuda_cflags: Tuple[str, ...] = ("-O3",)


_LOADED: Dict[str, Path] = {}
_LOCK = threading.Lock()


def cache_root() -> Path:
    env = os.environ.get("M3I_OPS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "m3i_modular" / "ops"


def cuda_arch_list() -> str:
    """Target archs: $TORCH_CUDA_ARCH_LIST, else the visible GPUs' compute capabilities."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if env:
        return env
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{a}.{b}" for a, b in caps)
    raise OpBuildError("no GPU visible to pick a CUDA arch: set TORCH_CUDA_ARCH_LIST (e.g. '9.0')")


def cuda_home() -> str:
    """The CUDA toolkit used for builds: $CUDA_HOME / $CUDA_PATH, else torch's guess (which can be a wrapper's
    directory, hence the header check)."""
    from torch.utils import cpp_extension

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or cpp_extension.CUDA_HOME
    if not home or not (Path(home) / "bin" / "nvcc").exists() or not (Path(home) / "include" / "cuda_runtime.h").exists():
        raise OpBuildError(f"CUDA toolkit not found (CUDA_HOME={home!r} lacks bin/nvcc or include/cuda_runtime.h): "
                           "set CUDA_HOME to the toolkit directory, e.g. /usr/local/cuda")
    return home


def build_key(spec: OpSpec, arch: str) -> str:
    h = hashlib.sha256()
    for part in (torch.__version__, str(torch.version.cuda), arch, *spec.extra_cflags, *spec.extra_cuda_cflags):
        h.update(part.encode() + b"\0")
    for src in spec.sources:
        folder = Path(src).parent
        for f in sorted(folder.iterdir()):  # headers beside the sources count too
            if f.suffix in (".cpp", ".cu", ".cuh", ".h", ".hpp"):
                h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def build_dir(spec: OpSpec, arch: str) -> Path:
    return cache_root() / f"{spec.name}-{build_key(spec, arch)}"


def library_path(spec: OpSpec, arch: str) -> Path:
    return build_dir(spec, arch) / f"{spec.name}.so"


def build(spec: OpSpec, *, verbose: bool = False) -> Path:
    """Compile `spec` with ninja into its cache directory and load it; returns the library path."""
    from torch.utils import cpp_extension

    arch = cuda_arch_list()
    home = cuda_home()
    if not cpp_extension.is_ninja_available():
        raise OpBuildError("ninja is not installed: pip install ninja")
    # torch reads CUDA_HOME once at import; a toolkit chosen by env afterwards must reach it too.
    cpp_extension.CUDA_HOME = home
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    out = build_dir(spec, arch)
    out.mkdir(parents=True, exist_ok=True)
    try:
        cpp_extension.load(name=spec.name, sources=list(spec.sources), build_directory=str(out),
                           extra_cflags=list(spec.extra_cflags), extra_cuda_cflags=list(spec.extra_cuda_cflags),
                           with_cuda=True, is_python_module=False, verbose=verbose)
    except (RuntimeError, OSError, FileNotFoundError) as e:  # compiler errors surface as RuntimeError
        raise OpBuildError(f"building op '{spec.name}' in {out} failed: {str(e).strip().splitlines()[-1]}") from e
    lib = out / f"{spec.name}.so"
    _LOADED[spec.name] = lib
    return lib


def load(spec: OpSpec, *, build_if_missing: bool = True, verbose: bool = False) -> Path:
    """Load `spec`'s library into torch.ops (once per process), building it first if allowed."""
    with _LOCK:
        if spec.name in _LOADED:
            return _LOADED[spec.name]
        lib = library_path(spec, cuda_arch_list())
        if lib.exists():
            torch.ops.load_library(str(lib))
            _LOADED[spec.name] = lib
            return lib
        if not build_if_missing:
            raise OpBuildError(f"op '{spec.name}' is not built for this torch/CUDA/arch: "
                               "run `python scripts/build_ops.py`")
        return build(spec, verbose=verbose)


def clean(spec: OpSpec) -> None:
    """Remove every cached build of `spec` (all keys)."""
    for d in cache_root().glob(f"{spec.name}-*"):
        shutil.rmtree(d, ignore_errors=True)
