"""Data that runs in the loader: sources, views (transforms, maskers, the batch pipeline), tokenizers and
the sample order. Offline writers (shards, tokenizer training) live in m3i_modular.preprocess.

Importing this package registers the built-in sources, transforms, maskers and tokenizers.
"""
from . import sources, tokenizers  # noqa: F401  (registration)
from .sampling import PositionSampler, derive_seed, epoch_order
from .views.pipeline import PretrainDataset, apply_view, build_views, collate, encode_text
from .views.view import View

__all__ = ["PositionSampler", "PretrainDataset", "View", "apply_view", "build_views", "collate",
           "derive_seed", "encode_text", "epoch_order"]
