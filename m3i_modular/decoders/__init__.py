from . import attention_pool, bert_heads, pool, predictor, seq2seq, token_head  # noqa: F401  (registration)
