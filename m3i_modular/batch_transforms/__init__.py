from . import mix_views  # noqa: F401  (registration)
