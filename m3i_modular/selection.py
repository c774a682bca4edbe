"""Which online tokens an objective reads (`select`) and where its predictor answers (the query)."""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .embeddings.tokens import Tokens
from .errors import ConfigError
from .interfaces import Query, Selection
from .layers.positions import grid_centres, view_relative_positions


@dataclass
class Encoded:
    """One online input after the encoder."""
    name: str
    z: torch.Tensor                        # (B, prefix + K, D)
    tokens: Tokens
    keep: Optional[torch.Tensor] = None    # (B, K) grid positions encoded (None: all)
    mask: Optional[torch.Tensor] = None    # (B, L) bool, True = hidden from the encoder
    prefix: int = 0
    replaced: Optional[torch.Tensor] = None  # (B, L) bool, True = entered as the mask token ("replace")


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _positions(grid, idx: torch.Tensor) -> torch.Tensor:
    centres = grid_centres(*grid, device=idx.device)
    return centres[idx]


def select(enc: Encoded, how: str, batch: dict) -> Selection:
    b = enc.z.shape[0]
    dev = enc.z.device
    rows = torch.arange(b, device=dev)
    geom = batch.get("geometry", {}).get(enc.name)
    grid = enc.tokens.grid
    pad = enc.tokens.pad_mask
    if how == "all":
        # a token the encoder saw only as the mask token is not visible (loss_on "masked" reads it)
        seen = None if enc.replaced is None else ~enc.replaced
        if grid is None:  # text, speech: no grid, no positions
            return Selection(z=enc.z, rows=rows, pad_mask=pad, prefix=enc.prefix, visible=seen)
        L = grid[0] * grid[1]
        idx = enc.keep if enc.keep is not None else torch.arange(L, device=dev).expand(b, -1)
        visible = torch.zeros(b, L, dtype=torch.bool, device=dev).scatter(1, idx, True)
        if seen is not None:
            visible = visible & seen
        return Selection(z=enc.z, rows=rows, pos=_positions(grid, idx), token_index=idx, visible=visible,
                         grid=grid, geometry=geom, prefix=enc.prefix)
    mix = batch.get("mix", {}).get(enc.name)
    if mix is None:
        raise ConfigError(f"select '{how}' needs a mixed input, but input '{enc.name}' is not made by a "
                          f"mixing batch transform: use select 'all' or mix the views first")
    if how == "both":
        a, bb = select(enc, "a", batch), select(enc, "b", batch)
        ka, kb = a.z.shape[1], bb.z.shape[1]
        k = max(ka, kb)  # ratio != 0.5: the roles hold different token counts, the shorter is padded

        def cat(x, y):
            x, y = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, k - t.shape[1])) for t in (x, y))
            return torch.cat([x, y], 0)
        pad = None
        if ka != kb:
            pad = torch.arange(k, device=dev) >= torch.tensor([ka] * b + [kb] * b, device=dev).unsqueeze(1)
        return Selection(z=cat(a.z, bb.z), rows=torch.cat([a.rows, bb.rows]), pos=cat(a.pos, bb.pos),
                         token_index=cat(a.token_index[..., None], bb.token_index[..., None])[..., 0],
                         visible=torch.cat([a.visible, bb.visible]), grid=grid,
                         geometry=torch.cat([a.geometry, bb.geometry]), pad_mask=pad, prefix=0)
    if how not in ("a", "b"):
        raise ConfigError(f"unknown select '{how}' (valid: all, a, b, both)")
    owner = mix["owner"]                                   # (B, L): 0 = image A, 1 = image B
    mine = owner == (0 if how == "a" else 1)
    k = int(mine[0].sum())
    idx = mine.float().argsort(dim=1, descending=True, stable=True)[:, :k].sort(dim=1).values
    z = _gather(enc.z[:, enc.prefix:], idx)
    if how == "b":
        rows = (rows - mix["shift"]) % b                    # input i holds image i - shift as B
    src_geom = batch["geometry"][mix["source"]].index_select(0, rows)
    return Selection(z=z, rows=rows, pos=_positions(grid, idx), token_index=idx, visible=mine, grid=grid,
                     geometry=src_geom, prefix=0)


def make_query(batch: dict, sel: Selection, enc: Encoded, target_view: str, target_grid) -> Query:
    """Target-view patch centres in the input view's frame, for each selected row."""
    b, dev = sel.z.shape[0], sel.z.device
    grid = target_grid or sel.grid
    geoms = batch.get("geometry", {})
    input_view = batch.get("mix", {}).get(enc.name, {}).get("source", enc.name)
    if target_view not in geoms or sel.geometry is None:
        pos = grid_centres(*grid, device=dev).expand(b, -1, -1)
        return Query(pos=pos, log_scale=torch.zeros(b, 2, device=dev), same_view=True)
    tgeom = geoms[target_view].index_select(0, sel.rows)
    pos, log_scale = view_relative_positions(tgeom, sel.geometry, grid)
    same = target_view == input_view and tuple(grid) == tuple(sel.grid)
    return Query(pos=pos, log_scale=log_scale, same_view=same)
