"""Transformer predictor f_psi: context tokens + mask tokens at the query positions -> per-token
predictions (MAE's decoder, SiameseIM / M3I's view-relative predictor).

Positions are sin-cos of the (x, y) patch coordinates in the INPUT view's frame, concatenated with sin-cos
of 10 * log(relative scale), then a Linear; with identical views this is the standard grid."""
import torch
from torch import nn

from ..interfaces import Query, Selection
from ..layers.block import TransformerBlock
from ..layers.positions import grid_centres, sincos_2d
from ..registry import DECODERS


@DECODERS.register("transformer_predictor")
class TransformerPredictor(nn.Module):
    needs = ("query",)  # the target view's token positions in the input view's frame

    def __init__(self, *, in_dim: int, out_dim: int, layers: int = 4, dim: int = 512, heads: int = 8,
                 mlp_ratio: float = 4.0, pos_dim: int = 0, relative_scale: bool = True, eps: float = 1e-6):
        super().__init__()
        self.dim, self.relative_scale = dim, relative_scale
        self.pos_dim = pos_dim or dim
        if self.pos_dim % 4:
            raise ValueError(f"pos_dim must be divisible by 4, got {self.pos_dim}")
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        scale_dim = self.pos_dim if relative_scale else 0
        self.pos_proj = nn.Linear(self.pos_dim + scale_dim, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim=dim, heads=heads, mlp_ratio=mlp_ratio, eps=eps)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.out = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _pos(self, pos: torch.Tensor, log_scale: torch.Tensor, grid) -> torch.Tensor:
        units = torch.stack((pos[..., 0] * grid[1], pos[..., 1] * grid[0]), dim=-1) - 0.5  # no host copy
        feats = [sincos_2d(units, self.pos_dim)]
        if self.relative_scale:
            s = sincos_2d(10.0 * log_scale, self.pos_dim).unsqueeze(1).expand(-1, pos.shape[1], -1)
            feats.append(s)
        return self.pos_proj(torch.cat(feats, dim=-1))

    def forward(self, sel: Selection, query: Query) -> torch.Tensor:
        if sel.grid is None:
            raise ValueError("transformer_predictor needs image tokens with a grid and a target view")
        b, dev = sel.z.shape[0], sel.z.device
        x = self.embed(sel.z[:, sel.prefix:])
        zero = torch.zeros(b, 2, device=dev)
        ctx_pos = sel.pos if sel.pos is not None else grid_centres(*sel.grid, device=dev).expand(b, -1, -1)
        x = x + self._pos(ctx_pos, zero, sel.grid).to(x.dtype)
        if query.same_view and sel.token_index is not None:
            # MAE-style fill: one sequence over the grid, mask tokens where the context has no token.
            L = sel.grid[0] * sel.grid[1]
            seq = self.mask_token.to(x.dtype).expand(b, L, -1).clone()
            seq = seq + self._pos(query.pos, query.log_scale, sel.grid).to(x.dtype)
            seq = seq.scatter(1, sel.token_index.unsqueeze(-1).expand(-1, -1, self.dim), x)
            n_ctx = 0
        else:
            q = self.mask_token.to(x.dtype) + self._pos(query.pos, query.log_scale, sel.grid).to(x.dtype)
            seq = torch.cat([x, q], dim=1)
            n_ctx = x.shape[1]
        for blk in self.blocks:
            seq = blk(seq)
        return self.out(self.norm(seq[:, n_ctx:]))
