from . import basic, frames, momentum, online, text_tower  # noqa: F401  (registration)
