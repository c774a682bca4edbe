from . import (attention_pool, bert_heads, pool, predictor, projector_predictor, seq2seq,  # noqa: F401  (registration)
               token_head)
