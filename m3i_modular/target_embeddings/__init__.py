from . import basic, tied_word  # noqa: F401  (registration)
