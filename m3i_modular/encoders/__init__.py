from . import transformer  # noqa: F401  (registration)
