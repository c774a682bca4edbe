"""Target embeddings (f_phi): a target y -> z_y or a candidate matrix (pixels, category, text tower, momentum
(EMA) copy, online, stopgrad, tied word embedding, frames), one per file.

A component family: imports only interfaces, registry, errors, layers/, runtime/ and other families."""
from . import basic, frames, momentum, online, soft_category, text_tower, tied_word  # noqa: F401  (registration)
