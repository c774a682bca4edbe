"""Pool + head: a global prediction from an image's (or text's) own tokens."""
import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import Selection
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


def make_head(head: str, in_dim: int, out_dim: int, hidden: int = 0, layers: int = 2,
              mlp_norm: str = "batch", last_norm: bool = False) -> nn.Module:
    """mlp_norm: the hidden layers' norm -- "batch" (SimCLR / BYOL / MoCo v3), "layer" (rank-local statistics
    free: exact under any data-parallel split) or "none"; last_norm: MoCo v3's affine-free BN on the output."""
    if mlp_norm not in ("batch", "layer", "none"):
        raise ValueError(f"mlp_norm must be batch, layer or none, got {mlp_norm!r}")
    if head == "linear":
        return nn.Linear(in_dim, out_dim)
    if head == "mlp":  # SimCLR / BYOL / MoCo v3 projector: Linear-BN-ReLU ... Linear
        hidden = hidden or 4 * in_dim
        mods, d = [], in_dim
        for _ in range(layers - 1):
            norm = {"batch": nn.BatchNorm1d(hidden), "layer": nn.LayerNorm(hidden), "none": nn.Identity()}
            mods += [nn.Linear(d, hidden, bias=mlp_norm == "none"), norm[mlp_norm], nn.ReLU(inplace=True)]
            d = hidden
        mods.append(nn.Linear(d, out_dim))
        if last_norm:
            mods.append(nn.BatchNorm1d(out_dim, affine=False))
        return nn.Sequential(*mods)
    if head == "none":
        if in_dim != out_dim:
            raise ValueError(f"head 'none' needs in_dim == out_dim, got {in_dim} and {out_dim}")
        return nn.Identity()
    raise ValueError(f"head must be linear, mlp or none, got {head!r}")


@DECODERS.register("pool")
class PoolDecoder(nn.Module):

    def __init__(self, *, in_dim: int, out_dim: int, pool: str = "mean", head: str = "linear",
                 hidden: int = 0, layers: int = 2, norm: bool = False, l2_normalize: bool = False,
                 mlp_norm: str = "batch", last_norm: bool = False):
        super().__init__()
        if pool not in ("mean", "cls", "eos"):
            raise ValueError(f"pool must be mean, cls or eos, got {pool!r}")
        self.pool, self.l2 = pool, l2_normalize
        self.norm = nn.LayerNorm(in_dim) if norm else nn.Identity()
        self.head = make_head(head, in_dim, out_dim, hidden, layers, mlp_norm, last_norm)

    def forward(self, sel: Selection) -> torch.Tensor:
        out = self.head(self.norm(pool_tokens(sel, self.pool)))
        return F.normalize(out, dim=-1) if self.l2 else out
