from . import attention_pool, bert_heads, pool, predictor, projector_predictor, token_head  # noqa: F401  (registration)
