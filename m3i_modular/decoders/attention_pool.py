"""Attention pooling: a learned query attends over an image's (or text's) selected tokens, then a linear or
MLP head (CoCa / ViT-22B style global readout; an alternative to mean pooling for global objectives)."""
import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import Selection
from ..registry import DECODERS, config_error
from .pool import make_head


@DECODERS.register("attention_pool")
class AttentionPoolDecoder(nn.Module):

    def __init__(self, *, in_dim: int, out_dim: int, heads: int = 4, queries: int = 1, head: str = "linear",
                 hidden: int = 0, layers: int = 2, mlp_norm: str = "batch", l2_normalize: bool = False,
                 eps: float = 1e-6):
        super().__init__()
        if in_dim % heads:
            raise config_error(f"in_dim {in_dim} is not divisible by heads {heads}", "heads")
        if queries < 1:
            raise config_error(f"queries must be >= 1, got {queries}", "queries")
        self.heads, self.l2 = heads, l2_normalize
        self.query = nn.Parameter(torch.zeros(1, queries, in_dim))
        self.norm = nn.LayerNorm(in_dim, eps=eps)
        self.q = nn.Linear(in_dim, in_dim)
        self.kv = nn.Linear(in_dim, 2 * in_dim)
        self.proj = nn.Linear(in_dim, in_dim)
        self.out_norm = nn.LayerNorm(in_dim, eps=eps)
        self.head = make_head(head, in_dim, out_dim, hidden, layers, mlp_norm)
        nn.init.normal_(self.query, std=0.02)
        for m in (self.q, self.kv, self.proj):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, sel: Selection) -> torch.Tensor:
        z = self.norm(sel.z)
        b, n, d = z.shape
        h = self.heads
        k, v = self.kv(z).view(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4)
        q = self.q(self.query.to(z.dtype)).expand(b, -1, -1)
        q = q.reshape(b, -1, h, d // h).transpose(1, 2)
        mask = None
        if sel.pad_mask is not None:
            mask = (~sel.pad_mask)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)            # (b, h, queries, d/h)
        out = self.proj(out.transpose(1, 2).reshape(b, -1, d)).mean(1)          # queries averaged
        out = self.head(self.out_norm(out))
        return F.normalize(out, dim=-1) if self.l2 else out
