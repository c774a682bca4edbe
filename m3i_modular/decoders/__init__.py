from . import pool, predictor  # noqa: F401  (registration)
