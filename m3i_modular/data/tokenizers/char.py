"""Character tokenizer: one id per Unicode character, vocabulary from a corpus or a saved vocab file.

The vocab file is a JSON list of tokens (id = position), because characters such as a newline or a space
cannot be written one per line unambiguously.
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ...errors import DataError
from ...registry import TOKENIZERS, config_error
from ...runtime.atomic import atomic_write_text
from .base import Tokenizer

SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]")  # ids 0..4 of every built vocabulary


def count_chars(texts: Iterable[str], *, lowercase: bool = False) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(text.lower() if lowercase else text)
    return counts


def vocab_from_counts(counts: collections.Counter, *, min_count: int = 1,
                      max_size: Optional[int] = None) -> List[str]:
    """Specials, then characters by decreasing count (ties by code point, so the order is reproducible)."""
    chars = sorted((c for c, n in counts.items() if n >= min_count and c not in SPECIALS),
                   key=lambda c: (-counts[c], c))
    if max_size is not None:
        chars = chars[:max(0, max_size - len(SPECIALS))]
    return list(SPECIALS) + chars


def _read_corpus(paths: Sequence[str]) -> Iterable[str]:
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"{path}: corpus file not found")
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield line.rstrip("\n")  # the line break separates documents; it is not a character


@TOKENIZERS.register("char")
class CharTokenizer(Tokenizer):
    file_args = ("vocab",)

    def __init__(self, *, vocab: Optional[str] = None, corpus: Optional[List[str]] = None,
                 min_count: int = 1, max_size: Optional[int] = None, lowercase: bool = False):
        if (vocab is None) == (corpus is None):
            raise config_error("give exactly one of 'vocab' (a JSON token list) or 'corpus' (text files)",
                               "vocab")
        if vocab is not None:
            tokens = self._load_vocab(vocab)
        else:
            tokens = vocab_from_counts(count_chars(_read_corpus(corpus), lowercase=lowercase),
                                       min_count=min_count, max_size=max_size)
        self._init_tokens(tokens, lowercase=lowercase)
        self.vocab = vocab

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, min_count: int = 1, max_size: Optional[int] = None,
                   lowercase: bool = False) -> "CharTokenizer":
        """Build the vocabulary from strings in memory (tests, small corpora)."""
        self = cls.__new__(cls)
        self._init_tokens(vocab_from_counts(count_chars(texts, lowercase=lowercase),
                                            min_count=min_count, max_size=max_size), lowercase=lowercase)
        self.vocab = None
        return self

    @staticmethod
    def _load_vocab(path: str) -> List[str]:
        if not os.path.isfile(path):
            raise config_error(f"char vocab file '{path}' not found", "vocab")
        try:
            with open(path, encoding="utf-8") as f:
                tokens = json.load(f)
        except ValueError as e:
            raise DataError(f"{path}: expected a JSON list of tokens ({e})") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{path}: expected a JSON list of strings")
        if "[UNK]" not in tokens:
            raise DataError(f"{path}: the vocab has no '[UNK]' token")
        return tokens

    def _init_tokens(self, tokens: List[str], *, lowercase: bool) -> None:
        self.tokens, self.lowercase = list(tokens), lowercase
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.unk_id = self._ids.get("[PAD]"), self._ids["[UNK]"]
        self.bos_id, self.eos_id = self._ids.get("[BOS]"), self._ids.get("[EOS]")
        self.mask_id = self._ids.get("[MASK]")

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> List[int]:
        if self.lowercase:
            text = text.lower()
        unk, ids = self.unk_id, self._ids
        return [ids.get(c, unk) for c in text]

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        skip = set(self.special_ids) - {self.unk_id} if skip_special else set()
        return "".join(self.tokens[int(i)] for i in ids if int(i) not in skip)

    def id_to_token(self, i: int) -> str:
        return self.tokens[int(i)]

    def token_to_id(self, token: str) -> Optional[int]:
        return self._ids.get(token)

    def config(self) -> Dict[str, Any]:
        # once built, a char tokenizer is its token list: the saved form always reloads from the vocab
        return {"type": "char", "vocab": self.vocab, "lowercase": self.lowercase}

    def _save_files(self, directory: str) -> Dict[str, str]:
        atomic_write_text(os.path.join(directory, "char_vocab.json"),
                          json.dumps(self.tokens, ensure_ascii=False) + "\n")
        return {"vocab": "char_vocab.json"}
