"""Text embeddings: word, learned or sin-cos position, segment. Parts compose by summation (see compose.py)."""
from typing import Optional

import torch
from torch import nn

from ..layers.positions import sincos_1d
from ..registry import EMBEDDINGS
from ..interfaces import Tokens


@EMBEDDINGS.register("word")
class WordEmbedding(nn.Module):
    def __init__(self, *, vocab_size: int, dim: int, pad_id: int = 0):
        super().__init__()
        self.dim, self.pad_id = dim, pad_id
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, ids: torch.Tensor, tokens: Optional[Tokens] = None) -> Tokens:
        return Tokens(x=nn.functional.embedding(ids, self.weight), pad_mask=ids == self.pad_id)


@EMBEDDINGS.register("position")
class PositionEmbedding(nn.Module):
    def __init__(self, *, max_length: int, dim: int, kind: str = "learned"):
        super().__init__()
        if kind not in ("learned", "sincos"):
            raise ValueError(f"kind must be learned or sincos, got {kind!r}")
        self.max_length, self.dim = max_length, dim
        if kind == "learned":
            self.weight = nn.Parameter(torch.empty(max_length, dim))
            nn.init.normal_(self.weight, std=0.02)
        else:
            self.register_buffer("weight", sincos_1d(torch.arange(max_length).float(), dim), persistent=False)

    def forward(self, ids: torch.Tensor, tokens: Optional[Tokens] = None) -> Tokens:
        if tokens is None:
            raise ValueError("a position embedding adds to tokens: list it after the word embedding")
        n = tokens.x.shape[1]
        if n > self.max_length:
            raise ValueError(f"sequence of {n} tokens is longer than max_length {self.max_length}")
        return tokens.with_x(tokens.x + self.weight[:n].to(tokens.x.dtype))


@EMBEDDINGS.register("segment")
class SegmentEmbedding(nn.Module):
    needs = ("batch:segments",)  # (B, N) segment ids; absent: every token is segment 0

    def __init__(self, *, num_segments: int = 2, dim: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(num_segments, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, ids: torch.Tensor, tokens: Optional[Tokens] = None, segments=None) -> Tokens:
        if tokens is None:
            raise ValueError("a segment embedding adds to tokens: list it after the word embedding")
        seg = segments if segments is not None else torch.zeros_like(ids)
        return tokens.with_x(tokens.x + nn.functional.embedding(seg, self.weight).to(tokens.x.dtype))
