"""A transformer block, pre- or post-norm (ViT / GPT use pre, BERT uses post)."""
from typing import Optional

import torch
from torch import nn

from .attention import Attention
from .drop_path import DropPath
from .mlp import Mlp


class TransformerBlock(nn.Module):
    def __init__(self, *, dim: int, heads: int, mlp_ratio: float = 4.0, norm: str = "pre",
                 qkv_bias: bool = True, drop_path: float = 0.0, dropout: float = 0.0, eps: float = 1e-6,
                 act: str = "gelu"):
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
        self.pre = norm == "pre"
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim=dim, heads=heads, qkv_bias=qkv_bias, proj_drop=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio), drop=dropout, act=act)
        self.drop_path = DropPath(p=drop_path)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                causal: bool = False) -> torch.Tensor:
        if self.pre:
            x = x + self.drop_path(self.attn(self.norm1(x), attn_mask, causal))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop_path(self.attn(x, attn_mask, causal)))
        return self.norm2(x + self.drop_path(self.mlp(x)))
