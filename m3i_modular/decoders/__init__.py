from . import attention_pool, bert_heads, pool, predictor, token_head  # noqa: F401  (registration)
