"""Data: sources, views (transforms + maskers), mixing and the batch pipeline.

Importing this package registers the built-in sources, transforms, maskers and tokenizers.
"""
from . import (audio_transforms, masks, mlm_masking, synthetic_audio, synthetic_shapes,  # noqa: F401  (registration)
               text_source, tokenizers, transforms, webdataset_source)
from .mixing import PositionSampler, derive_seed, epoch_order
from .pipeline import PretrainDataset, apply_view, build_views, collate, encode_text
from .view import View

__all__ = ["PositionSampler", "PretrainDataset", "View", "apply_view", "build_views", "collate",
           "derive_seed", "encode_text", "epoch_order"]
