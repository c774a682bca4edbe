"""BERT's WordPiece: basic pre-tokenisation (clean, CJK and punctuation split, lower-case, strip accents)
followed by greedy longest-match-first sub-words over a vocab.txt (one token per line, id = line number).
"""
from __future__ import annotations

import os
import unicodedata
from typing import Any, Dict, List, Optional, Sequence

from ...errors import DataError
from ...registry import TOKENIZERS, config_error
from ...runtime.atomic import atomic_write_text
from .base import Tokenizer

# CJK Unified Ideographs blocks (not Hangul or kana, which BERT treats as ordinary letters).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # ASCII symbols such as $ + ^ ` are not Unicode "P*" but BERT splits them like punctuation
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _strip_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def _split_punctuation(word: str) -> List[str]:
    pieces: List[str] = []
    current = ""
    for ch in word:
        if _is_punctuation(ch):
            if current:
                pieces.append(current)
                current = ""
            pieces.append(ch)
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


@TOKENIZERS.register("wordpiece")
class WordPieceTokenizer(Tokenizer):
    file_args = ("vocab",)

    def __init__(self, *, vocab: str, lowercase: bool = True, strip_accents: Optional[bool] = None,
                 split_cjk: bool = True, unk_token: str = "[UNK]", pad_token: str = "[PAD]",
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]", mask_token: str = "[MASK]",
                 max_word_chars: int = 100):
        if not os.path.isfile(vocab):
            raise config_error(f"wordpiece vocab file '{vocab}' not found (a BERT vocab.txt)", "vocab")
        with open(vocab, encoding="utf-8") as f:
            tokens = [line.rstrip("\n").rstrip("\r") for line in f]
        while tokens and tokens[-1] == "":  # a trailing newline is not a token
            tokens.pop()
        if unk_token not in tokens:
            raise DataError(f"{vocab}: the unknown token '{unk_token}' is not in the vocab")
        self.vocab, self.tokens = vocab, tokens
        self._ids = {}
        for i, t in enumerate(tokens):
            self._ids.setdefault(t, i)  # BERT vocabs keep the first of duplicated lines
        self.lowercase, self.strip_accents, self.split_cjk = lowercase, strip_accents, split_cjk
        self.max_word_chars = max_word_chars
        self._special_tokens = {"unk_token": unk_token, "pad_token": pad_token, "cls_token": cls_token,
                                "sep_token": sep_token, "mask_token": mask_token}
        self.unk_id = self._ids[unk_token]
        self.pad_id = self._ids.get(pad_token)
        self.bos_id = self._ids.get(cls_token)  # BERT's [CLS] opens a sequence, [SEP] closes it
        self.eos_id = self._ids.get(sep_token)
        self.mask_id = self._ids.get(mask_token)
        # special tokens written literally in the text stay whole, as in BERT's tokenizers
        self._never_split = sorted({t for t in self._special_tokens.values() if t in self._ids},
                                   key=len, reverse=True)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    # --- pre-tokenisation -------------------------------------------------------------------------
    def _clean(self, text: str) -> str:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                out.append(" ")
            elif self.split_cjk and _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        return "".join(out)

    def basic_tokenize(self, text: str) -> List[str]:
        """Words and punctuation marks, after cleaning, lower-casing and accent stripping."""
        words: List[str] = []
        for part, special in self._split_specials(text):
            if special:
                words.append(part)
                continue
            part = unicodedata.normalize("NFC", self._clean(part))
            for word in part.split():
                if self.lowercase:
                    word = word.lower()
                if self.strip_accents or (self.strip_accents is None and self.lowercase):
                    word = _strip_accents(word)
                words.extend(_split_punctuation(word))
        return words

    def _split_specials(self, text: str):
        if not self._never_split:
            yield text, False
            return
        start = i = 0
        while i < len(text):
            hit = next((t for t in self._never_split if text.startswith(t, i)), None)
            if hit is None:
                i += 1
                continue
            if start < i:
                yield text[start:i], False
            yield hit, True
            i += len(hit)
            start = i
        if start < len(text):
            yield text[start:], False

    def _wordpiece(self, word: str) -> List[int]:
        if len(word) > self.max_word_chars:
            return [self.unk_id]
        ids: List[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:  # longest prefix first
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self._ids.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:  # any unmatched remainder makes the whole word unknown
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    # --- interface ------------------------------------------------------------------------------
    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for word in self.basic_tokenize(text):
            if word in self._never_split:
                ids.append(self._ids[word])
            else:
                ids.extend(self._wordpiece(word))
        return ids

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        skip = set(self.special_ids) - {self.unk_id} if skip_special else set()
        words = [self.tokens[int(i)] for i in ids if int(i) not in skip]
        return " ".join(words).replace(" ##", "")

    def id_to_token(self, i: int) -> str:
        return self.tokens[int(i)]

    def token_to_id(self, token: str) -> Optional[int]:
        return self._ids.get(token)

    def config(self) -> Dict[str, Any]:
        return {"type": "wordpiece", "vocab": self.vocab, "lowercase": self.lowercase,
                "strip_accents": self.strip_accents, "split_cjk": self.split_cjk,
                "max_word_chars": self.max_word_chars, **self._special_tokens}

    def _save_files(self, directory: str) -> Dict[str, str]:
        atomic_write_text(os.path.join(directory, "vocab.txt"), "".join(t + "\n" for t in self.tokens))
        return {"vocab": "vocab.txt"}
