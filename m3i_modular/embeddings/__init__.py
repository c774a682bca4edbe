from . import intern_image_stem, norm, patch, speech, text  # noqa: F401  (registration)
from .compose import ComposedEmbedding, build_embedding

__all__ = ["ComposedEmbedding", "build_embedding"]
