from . import pool, predictor, seq2seq, token_head  # noqa: F401  (registration)
