"""The process and the device: distributed ranks, parallel wrapping (DDP / FSDP2), precision, threads,
hardware peaks and atomic file writes.

Imports nothing of ours but errors: everything else may build on it."""

_THREADS = ("cores_available", "plan_threads", "set_sdpa_backend", "apply")


def __getattr__(name: str):
    # release 0.1's m3i_modular/runtime.py is runtime/threads.py now: its names answer here for one release
    if name in _THREADS:
        import importlib
        import warnings
        warnings.warn(f"m3i_modular.runtime.{name} moved to m3i_modular.runtime.threads.{name}; the old path is "
                      "removed in the next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(".threads", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
