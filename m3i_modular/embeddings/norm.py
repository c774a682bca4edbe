"""An embedding-level LayerNorm (+ dropout), applied to the sum of the parts before it (BERT's embeddings)."""
from typing import Optional

import torch
from torch import nn

from ..registry import EMBEDDINGS
from ..interfaces import Tokens


@EMBEDDINGS.register("layer_norm")
class EmbeddingNorm(nn.Module):
    def __init__(self, *, dim: int, eps: float = 1e-12, dropout: float = 0.0):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor, tokens: Optional[Tokens] = None) -> Tokens:
        if tokens is None:
            raise ValueError("a layer_norm embedding part normalises tokens: list it after the other parts")
        return tokens.with_x(self.drop(self.norm(tokens.x)))
