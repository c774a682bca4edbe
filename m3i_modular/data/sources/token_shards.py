"""`token_shards`: a map-style text source over TokenShards (written by `preprocess.py text`).

mode "lm"   (GPT): the documents concatenated into one stream cut into windows of `seq_length` tokens;
             sample i is window i (documents are separated by EOS when the shards were written with
             --append-eos).
mode "bert" (BERT / ALBERT): each document's sentences are packed greedily into segments of at most
             `seq_length - 3` tokens; a segment is split at a sentence boundary into A and B, written as
             [CLS] A [SEP] B [SEP]; with probability 0.5 A and B are swapped (sentence-order prediction:
             `sop_label` 1 = swapped). The split and the swap depend only on (seed, index), like an offline
             instance file built once.
A sample is {"tokens": long (seq_length,), "fields": {"segments": long (seq_length,), "sop_label": int}}.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch

from ...errors import DataError
from ...registry import DATASETS, config_error
from ..sampling import generator
from .token_store import TokenShards


def _pack_segments(shards: TokenShards, budget: int) -> np.ndarray:
    """(num_segments, 2) global sentence ranges [s0, s1) that never cross a document and hold at most
    `budget` tokens (a single longer sentence is one segment, truncated later)."""
    out: List[np.ndarray] = []
    sent_base = 0
    for shard in shards.shards:
        _, sent, doc = shard.maps()
        lens = np.diff(np.asarray(sent, dtype=np.int64))
        doc = np.asarray(doc, dtype=np.int64)
        starts: List[int] = []
        ends: List[int] = []
        for d in range(len(doc) - 1):
            s, used, first = int(doc[d]), 0, int(doc[d])
            for s in range(int(doc[d]), int(doc[d + 1])):
                n = int(lens[s])
                if used and used + n > budget:
                    starts.append(first)
                    ends.append(s)
                    first, used = s, 0
                used += n
            if used:
                starts.append(first)
                ends.append(int(doc[d + 1]))
        out.append(np.stack([np.asarray(starts, np.int64), np.asarray(ends, np.int64)], 1) + sent_base
                   if starts else np.zeros((0, 2), np.int64))
        sent_base += shard.num_sentences
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


@DATASETS.register("token_shards")
class TokenShardsSource:
    def __init__(self, *, path: str, seq_length: int = 128, mode: str = "lm", sop: bool = True, seed: int = 0):
        if mode not in ("lm", "bert"):
            raise config_error(f"mode must be lm or bert, got {mode!r}", "mode")
        if seq_length < (8 if mode == "bert" else 2):
            raise config_error(f"seq_length {seq_length} is too short for mode {mode}", "seq_length")
        self.shards = TokenShards(path)
        self.mode, self.seq_length, self.sop, self.seed = mode, seq_length, sop, seed
        tok = self.shards.tokenizer()
        self.pad_id = 0 if tok.pad_id is None else int(tok.pad_id)
        self.cls_id, self.sep_id = tok.bos_id, tok.eos_id
        if mode == "bert" and (self.cls_id is None or self.sep_id is None):
            raise DataError(f"{path}: mode 'bert' needs a tokenizer with [CLS]/BOS and [SEP]/EOS ids")
        if mode == "lm":
            self._shard_start = np.cumsum([0] + [s.num_tokens for s in self.shards.shards])
            self._len = int(self._shard_start[-1]) // seq_length
        else:
            self._segments = _pack_segments(self.shards, seq_length - 3)
            self._sent_start = np.cumsum([0] + [s.num_sentences for s in self.shards.shards])
            self._len = len(self._segments)
        if self._len < 1:
            raise DataError(f"{path}: the corpus holds no complete sequence of {seq_length} tokens")

    def __len__(self) -> int:
        return self._len

    # -- lm ------------------------------------------------------------------------------------------
    def _stream(self, start: int, n: int) -> np.ndarray:
        """Tokens [start, start + n) of the concatenated shards."""
        parts = []
        k = int(np.searchsorted(self._shard_start, start, side="right")) - 1
        while n > 0:
            tokens = self.shards.shards[k].maps()[0]
            off = start - int(self._shard_start[k])
            piece = np.asarray(tokens[off:off + n], dtype=np.int64)
            parts.append(piece)
            start, n, k = start + len(piece), n - len(piece), k + 1
        return np.concatenate(parts)

    # -- bert ----------------------------------------------------------------------------------------
    def _sentence(self, s: int) -> np.ndarray:
        k = int(np.searchsorted(self._sent_start, s, side="right")) - 1
        tokens, sent, _ = self.shards.shards[k].maps()
        j = s - int(self._sent_start[k])
        return np.asarray(tokens[sent[j]:sent[j + 1]], dtype=np.int64)

    def _pair(self, index: int) -> Dict[str, Any]:
        s0, s1 = (int(x) for x in self._segments[index])
        g = generator("token_shards", self.seed, index)
        sents = [self._sentence(s) for s in range(s0, s1)]
        if len(sents) >= 2:
            cut = 1 + int(torch.randint(len(sents) - 1, (1,), generator=g))
            a, b = np.concatenate(sents[:cut]), np.concatenate(sents[cut:])
        else:  # one sentence: split its tokens
            only = sents[0]
            cut = max(1, len(only) // 2)
            a, b = only[:cut], only[cut:]
        budget = self.seq_length - 3
        while len(a) + len(b) > budget:  # trim the longer side, from its far end
            if len(a) >= len(b):
                a = a[1:]
            else:
                b = b[:-1]
        swap = self.sop and len(b) > 0 and bool(torch.rand((), generator=g) < 0.5)
        if swap:
            a, b = b, a
        ids = np.concatenate([[self.cls_id], a, [self.sep_id], b, [self.sep_id]]).astype(np.int64)
        seg = np.concatenate([np.zeros(len(a) + 2, np.int64), np.ones(len(b) + 1, np.int64)])
        tokens = torch.full((self.seq_length,), self.pad_id, dtype=torch.long)
        segments = torch.zeros(self.seq_length, dtype=torch.long)
        tokens[:len(ids)] = torch.from_numpy(ids)
        segments[:len(seg)] = torch.from_numpy(seg)
        return {"tokens": tokens, "fields": {"segments": segments, "sop_label": int(swap)},
                "key": f"seg{index}"}

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if not 0 <= index < self._len:
            raise IndexError(f"sequence {index} out of range for {self._len}")
        if self.mode == "bert":
            return self._pair(index)
        ids = self._stream(index * self.seq_length, self.seq_length)
        return {"tokens": torch.from_numpy(ids), "key": f"win{index}",
                "fields": {"segments": torch.zeros(self.seq_length, dtype=torch.long)}}
