"""m3i_modular: pretraining models assembled from swappable components declared in JSON."""
__version__ = "0.1.0"

from . import batch_transforms, data, decoders, embeddings, encoders, target_embeddings, targets  # noqa: F401,E402,I001
from .inference import load  # noqa: E402
