"""Multi-head self-attention on torch's scaled_dot_product_attention (flash / memory-efficient kernels)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, *, dim: int, heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                causal: bool = False) -> torch.Tensor:
        """x: (B, N, D); attn_mask: bool (B or 1, 1 or heads, N, N), True = may attend."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if causal and attn_mask is not None:
            # SDPA refuses is_causal together with a mask: fold the triangle into the mask.
            tri = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            attn_mask, causal = attn_mask & tri, False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))
