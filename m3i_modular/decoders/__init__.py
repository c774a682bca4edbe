"""Decoders (f_psi in M3I's formula): z_x -> the prediction of the target (transformer predictor, pool + head,
projector / predictor, attention pooling, MLM and token heads, seq2seq), one per file.

A component family: imports only interfaces, registry, errors, layers/, runtime/ and other families."""
from . import (attention_pool, bert_heads, pool, predictor, projector_predictor, seq2seq,  # noqa: F401  (registration)
               token_head)
