"""Token-id shards (memory-mapped arrays + an offset index) and their reader; written by
`preprocess.py text` (m3i_modular/preprocess/text_writer.py).

Output directory layout (no pickles; every file is raw numbers or JSON):
  tokenizer/            the tokenizer's files (`tokenizer_from_dir` reloads them)
  shard-00000.bin       token ids, one flat array (uint16 when the vocabulary fits, else uint32)
  shard-00000.idx       int64: sentence offsets into .bin (num_sentences + 1), then
                        document offsets into the sentences (num_documents + 1)
  shard-00000.json      header: dtype, counts, tokenizer config, source format
"""
from __future__ import annotations

import json
import os
from typing import List, Optional, Tuple

import numpy as np

from ...errors import DataError
from ..tokenizers import Tokenizer, tokenizer_from_dir

SHARD_VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class _Shard:
    """One shard's header and lazily opened memory maps (a worker process opens its own)."""

    def __init__(self, base: str):
        self.base = base
        try:
            with open(base + ".json", encoding="utf-8") as f:
                self.header = json.load(f)
            self.dtype = np.dtype(self.header["dtype"])
            self.num_tokens = int(self.header["num_tokens"])
            self.num_sentences = int(self.header["num_sentences"])
            self.num_documents = int(self.header["num_documents"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{base}.json: unreadable shard header ({e})") from None
        for ext, size in ((".bin", self.num_tokens * self.dtype.itemsize),
                          (".idx", (self.num_sentences + self.num_documents + 2) * 8)):
            actual = os.path.getsize(base + ext) if os.path.isfile(base + ext) else None
            if actual != size:
                raise DataError(f"{base}{ext}: expected {size} bytes from the header, found "
                                f"{'no file' if actual is None else actual}; the shard is incomplete")
        self._maps: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None

    def maps(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._maps is None:
            tokens = (np.memmap(self.base + ".bin", dtype=self.dtype, mode="r") if self.num_tokens
                      else np.zeros(0, self.dtype))  # mmap refuses an empty file
            idx = np.memmap(self.base + ".idx", dtype=np.int64, mode="r")
            n = self.num_sentences + 1
            self._maps = (tokens, idx[:n], idx[n:])
        return self._maps

    def __getstate__(self):
        return dict(self.__dict__, _maps=None)  # reopen the maps after a copy to another process


class TokenShards:
    """Read a directory written by `write_text_shards` (or one shard, by its path without extension).

    `shards[i]` is document i's token ids (a read-only numpy view into the memory map);
    `sentences(i)` its sentences; `document_lengths()` the token count of every document.
    """

    def __init__(self, path: str):
        path = os.fspath(path)
        if os.path.isdir(path):
            self.root = path
            names = sorted(n[:-5] for n in os.listdir(path) if n.startswith("shard-") and n.endswith(".json"))
            bases = [os.path.join(path, n) for n in names]
        else:
            stem = os.path.splitext(path)[0] if path.endswith((".json", ".bin", ".idx")) else path
            self.root = os.path.dirname(stem)
            bases = [stem] if os.path.isfile(stem + ".json") else []
        if not bases:
            raise DataError(f"{path}: no token shards here (expected shard-*.json/.bin/.idx from "
                            f"`preprocess.py text`)")
        self.shards = [_Shard(b) for b in bases]
        self.header = self.shards[0].header
        self._doc_start = np.cumsum([0] + [s.num_documents for s in self.shards])

    def __len__(self) -> int:
        return int(self._doc_start[-1])

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.shards)

    @property
    def num_sentences(self) -> int:
        return sum(s.num_sentences for s in self.shards)

    def _locate(self, i: int) -> Tuple[_Shard, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"document {i} out of range for {n} documents")
        i %= n
        k = int(np.searchsorted(self._doc_start, i, side="right")) - 1
        return self.shards[k], i - int(self._doc_start[k])

    def __getitem__(self, i: int) -> np.ndarray:
        return self.document(i)

    def document(self, i: int) -> np.ndarray:
        shard, j = self._locate(i)
        tokens, sent, doc = shard.maps()
        return tokens[sent[doc[j]]:sent[doc[j + 1]]]

    def sentences(self, i: int) -> List[np.ndarray]:
        shard, j = self._locate(i)
        tokens, sent, doc = shard.maps()
        return [tokens[sent[s]:sent[s + 1]] for s in range(doc[j], doc[j + 1])]

    def document_lengths(self) -> np.ndarray:
        out = []
        for shard in self.shards:
            _, sent, doc = shard.maps()
            out.append(np.asarray(sent[doc[1:]] - sent[doc[:-1]], dtype=np.int64))
        return np.concatenate(out)

    def tokenizer(self) -> Tokenizer:
        """The tokenizer the shards were written with (saved beside them)."""
        return tokenizer_from_dir(os.path.join(self.root, "tokenizer"))
