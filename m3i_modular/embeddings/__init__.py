"""Embeddings (the front of f_theta): a view -> tokens (patch, word, position, segment, speech subsampler,
InternImage stem), one per file, and the summed composition of named parts.

A component family: imports only interfaces, registry, errors, layers/ and runtime/."""
from . import intern_image_stem, norm, patch, speech, text  # noqa: F401  (registration)
from .compose import ComposedEmbedding, build_embedding

__all__ = ["ComposedEmbedding", "build_embedding"]
