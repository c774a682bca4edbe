"""Position helpers: sin-cos tables, patch-grid centres and view-relative positions
(SiameseIM / M3I: target patch centres mapped into the input view's frame)."""
from typing import Tuple

import torch


def sincos_1d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(...,) float positions -> (..., dim) [sin | cos] features."""
    if dim % 2:
        raise ValueError(f"sin-cos dim must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float32, device=pos.device) / (dim / 2)
    omega = 1.0 / temperature ** omega
    out = pos.float().unsqueeze(-1) * omega
    return torch.cat([out.sin(), out.cos()], dim=-1)


def sincos_2d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., 2) positions as (x, y) in patch units -> (..., dim): half the channels for y, half for x."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos dim must be divisible by 4, got {dim}")
    return torch.cat([sincos_1d(pos[..., 1], dim // 2), sincos_1d(pos[..., 0], dim // 2)], dim=-1)


def grid_centres(h: int, w: int, device=None) -> torch.Tensor:
    """(h*w, 2) patch centres (x, y) in normalised [0, 1] view coordinates, row-major."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def _to_source(pts: torch.Tensor, geom: torch.Tensor) -> torch.Tensor:
    """View coordinates -> source-image coordinates. geom (B, 5) = x0, y0, x1, y1, flip."""
    x, y = pts[..., 0], pts[..., 1]
    flip = geom[:, 4:5] > 0.5
    x = torch.where(flip, 1.0 - x, x)
    sx = geom[:, 0:1] + x * (geom[:, 2:3] - geom[:, 0:1])
    sy = geom[:, 1:2] + y * (geom[:, 3:4] - geom[:, 1:2])
    return torch.stack([sx, sy], dim=-1)


def _from_source(pts: torch.Tensor, geom: torch.Tensor) -> torch.Tensor:
    x = (pts[..., 0] - geom[:, 0:1]) / (geom[:, 2:3] - geom[:, 0:1])
    y = (pts[..., 1] - geom[:, 1:2]) / (geom[:, 3:4] - geom[:, 1:2])
    flip = geom[:, 4:5] > 0.5
    x = torch.where(flip, 1.0 - x, x)
    return torch.stack([x, y], dim=-1)


def view_relative_positions(target_geom: torch.Tensor, input_geom: torch.Tensor,
                            grid: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Target-view patch centres expressed in input-view coordinates (not clamped: outside the input
    view they fall outside [0, 1]) and log of the relative scale (target size / input size) per axis.

    Returns positions (B, h*w, 2) and log-scale (B, 2).
    """
    b = target_geom.shape[0]
    centres = grid_centres(*grid, device=target_geom.device).expand(b, -1, -1)
    pos = _from_source(_to_source(centres, target_geom.float()), input_geom.float())
    tsize = target_geom[:, 2:4] - target_geom[:, 0:2]
    isize = input_geom[:, 2:4] - input_geom[:, 0:2]
    return pos, torch.log(tsize.float() / isize.float())
