from . import basic, frames, momentum, online, soft_category, text_tower, tied_word  # noqa: F401  (registration)
