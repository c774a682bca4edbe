"""m3i_modular: pretraining models assembled from swappable components declared in JSON.

Where things live: interfaces / registry / errors (the contract every component uses), the component families
(embeddings, encoders, target_embeddings, decoders, targets, batch_transforms, selectors, layers, ops), data/,
recipe/ (JSON -> built model), training/ (the loop and what it writes), runtime/ (the process and the
device), eval/, eval_cli/, convert/, preprocess/, study/, bench/; cli, run and inference are the entry points' code.

Importing the package imports no torch (so `pretrain.py --help` and recipe errors answer at once): the
registries import their built-in components on first lookup (registry.Registry), and `m3i_modular.load` and
the subpackages load when first used. The flat module paths of release 0.1 (`m3i_modular.trainer`, ...)
still import for one release, with a DeprecationWarning naming the new path: a meta-path finder answers for
the old name with the module at its new path (the same module object, so monkeypatching keeps working)."""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.2.0"

# -- one-release shims for the flat module paths of release 0.1 (issue 22) -----------------------------------
_GROUPS = {
    "recipe": ("config", "sections", "validate", "model", "discover"),
    "selectors": ("selection",),
    "training": ("trainer", "checkpoint", "sharded", "rundir", "optim", "schedules", "flops", "loggers",
                 "signals"),
    "runtime": ("distributed", "parallel", "precision", "peaks", "atomic"),
}
# old leaf name -> new dotted path under m3i_modular (runtime.py became runtime/threads.py: runtime/__init__)
MOVED = {leaf: f"{group}.{leaf}" for group, leaves in _GROUPS.items() for leaf in leaves}
MOVED["rules"] = "registry"  # the value rules of component keys joined the registry that applies them
_PKG = __name__


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; the old path is removed in the next release",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass  # the module at its new path is already executed


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        pkg, _, leaf = fullname.rpartition(".")
        if pkg != _PKG or leaf not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(f"{_PKG}.{MOVED[leaf]}"))


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedFinder())


_SUBMODULES = ("batch_transforms", "data", "decoders", "embeddings", "encoders", "target_embeddings", "targets",
               "selectors", "eval", "layers", "ops", "convert", "preprocess", "recipe", "training", "runtime",
               "eval_cli", "study", "bench", "inference", "run", "cli")


def __getattr__(name: str):
    if name == "load":
        from .inference import load
        return load
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in MOVED:  # `from m3i_modular import trainer` (release 0.1)
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'm3i_modular' has no attribute '{name}'")
