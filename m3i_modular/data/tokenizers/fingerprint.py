"""A tokenizer's fingerprint: a short hash of what decides the ids it writes (its type, its options, every
token by id and its special ids), the same for the same vocabulary whatever directory its files are in.

`preprocess.py text` records it in each token shard's header; a run compares it with its own tokenizer's
(data/metadata.py), so shards written with one vocabulary are never trained or saved with another.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Optional


def fingerprint(tokenizer: Any) -> Optional[str]:
    """12 hex digits, or None for a tokenizer that cannot list its tokens (a plugin's)."""
    try:
        size = int(tokenizer.vocab_size)
        cfg = dict(tokenizer.config())
        tokens = [tokenizer.id_to_token(i) for i in range(size)]
    except (NotImplementedError, AttributeError, TypeError):
        return None
    for arg in getattr(tokenizer, "file_args", ()):  # where the files are is no part of the vocabulary
        cfg.pop(arg, None)
    special = {k: getattr(tokenizer, k, None) for k in ("pad_id", "bos_id", "eos_id", "mask_id", "unk_id")}
    blob = json.dumps({"config": cfg, "special": special, "tokens": tokens}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def describe(tokenizer: Any) -> str:
    """'wordpiece, 79 tokens, fingerprint 1a2b3c4d5e6f' (a short identity for error lines)."""
    fp = fingerprint(tokenizer)
    kind = getattr(tokenizer, "config", lambda: {})().get("type", type(tokenizer).__name__)
    return f"{kind}, {tokenizer.vocab_size} tokens" + (f", fingerprint {fp}" if fp else "")
