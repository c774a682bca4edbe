"""Pool + head: a global prediction from an image's (or text's) own tokens."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import Query, Selection
from ..registry import DECODERS


def pool_tokens(sel: Selection, how: str) -> torch.Tensor:
    z = sel.z
    if how == "cls":
        return z[:, 0]
    if how == "eos":  # the last non-padding token (GPT / CLIP text towers)
        if sel.pad_mask is None:
            return z[:, -1]
        last = (~sel.pad_mask).sum(1).clamp(min=1) - 1
        return z[torch.arange(z.shape[0], device=z.device), last]
    z = z[:, sel.prefix:]
    if sel.pad_mask is not None:
        keep = (~sel.pad_mask[:, sel.prefix:]).unsqueeze(-1).to(z.dtype)
        return (z * keep).sum(1) / keep.sum(1).clamp(min=1.0)
    return z.mean(1)


@DECODERS.register("pool")
class PoolDecoder(nn.Module):
    needs_query = False

    def __init__(self, *, in_dim: int, out_dim: int, pool: str = "mean", head: str = "linear",
                 hidden: int = 0, layers: int = 2, norm: bool = False, l2_normalize: bool = False):
        super().__init__()
        if pool not in ("mean", "cls", "eos"):
            raise ValueError(f"pool must be mean, cls or eos, got {pool!r}")
        self.pool, self.l2 = pool, l2_normalize
        self.norm = nn.LayerNorm(in_dim) if norm else nn.Identity()
        if head == "linear":
            self.head = nn.Linear(in_dim, out_dim)
        elif head == "mlp":  # SimCLR / BYOL / MoCo v3 projector: Linear-BN-ReLU ... Linear
            hidden = hidden or 4 * in_dim
            mods, d = [], in_dim
            for _ in range(layers - 1):
                mods += [nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
                d = hidden
            mods.append(nn.Linear(d, out_dim))
            self.head = nn.Sequential(*mods)
        elif head == "none":
            if in_dim != out_dim:
                raise ValueError(f"head 'none' needs in_dim == out_dim, got {in_dim} and {out_dim}")
            self.head = nn.Identity()
        else:
            raise ValueError(f"head must be linear, mlp or none, got {head!r}")

    def forward(self, sel: Selection, query: Optional[Query] = None) -> torch.Tensor:
        out = self.head(self.norm(pool_tokens(sel, self.pool)))
        return F.normalize(out, dim=-1) if self.l2 else out
