from . import intern_image_stem, norm, patch, speech, text  # noqa: F401  (registration)
from .compose import ComposedEmbedding, build_embedding
from .tokens import Tokens

__all__ = ["ComposedEmbedding", "Tokens", "build_embedding"]
