from . import basic  # noqa: F401  (registration)
