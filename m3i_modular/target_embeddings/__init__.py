from . import basic, momentum, online, text_tower  # noqa: F401  (registration)
