from . import attention_pool, pool, predictor, token_head  # noqa: F401  (registration)
