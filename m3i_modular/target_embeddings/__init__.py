from . import basic, frames, momentum, online, text_tower, tied_word  # noqa: F401  (registration)
