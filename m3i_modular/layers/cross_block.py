"""A transformer decoder block: causal self-attention over the target, cross-attention to the encoder's
tokens (z_x), MLP; pre- or post-norm like TransformerBlock."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .mlp import Mlp


class CrossAttention(nn.Module):
    """Queries from x (B, N, D), keys and values from memory (B, M, D)."""

    def __init__(self, *, dim: int, heads: int, qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                memory_pad: Optional[torch.Tensor] = None) -> torch.Tensor:
        """memory_pad: (B, M) bool, True = padding (never attended)."""
        b, n, d = x.shape
        m, h = memory.shape[1], self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(memory).view(b, m, 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if memory_pad is None else (~memory_pad)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class DecoderBlock(nn.Module):
    def __init__(self, *, dim: int, heads: int, mlp_ratio: float = 4.0, norm: str = "post",
                 qkv_bias: bool = True, dropout: float = 0.0, eps: float = 1e-6):
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
        self.pre = norm == "pre"
        self.self_attn = Attention(dim=dim, heads=heads, qkv_bias=qkv_bias, proj_drop=dropout)
        self.cross_attn = CrossAttention(dim=dim, heads=heads, qkv_bias=qkv_bias, proj_drop=dropout)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio), drop=dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim, eps=eps) for _ in range(3))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: Optional[torch.Tensor] = None,
                memory_pad: Optional[torch.Tensor] = None) -> torch.Tensor:
        """self_mask: bool (B, 1, N, N) or None, True = may attend; causality is always applied."""
        if self.pre:
            x = x + self.self_attn(self.norm1(x), self_mask, True)
            x = x + self.cross_attn(self.norm2(x), memory, memory_pad)
            return x + self.mlp(self.norm3(x))
        x = self.norm1(x + self.self_attn(x, self_mask, True))
        x = self.norm2(x + self.cross_attn(x, memory, memory_pad))
        return self.norm3(x + self.mlp(x))
