from . import pool, predictor, token_head  # noqa: F401  (registration)
