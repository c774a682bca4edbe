from . import attention_pool, pool, predictor  # noqa: F401  (registration)
