"""m3i_modular: pretraining models assembled from swappable components declared in JSON.

Importing the package imports no torch (so `pretrain.py --help` and recipe errors answer at once): the
registries import their built-in components on first lookup (registry.Registry), and `m3i_modular.load` and
the subpackages load when first used."""
import importlib

__version__ = "0.1.0"

_SUBMODULES = ("batch_transforms", "data", "decoders", "embeddings", "encoders", "target_embeddings", "targets",
               "eval", "layers", "ops", "convert", "preprocess", "inference", "model", "trainer", "run")


def __getattr__(name: str):
    if name == "load":
        from .inference import load
        return load
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'm3i_modular' has no attribute '{name}'")
