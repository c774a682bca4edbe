"""Which online tokens an objective reads (its `select`), and what its decoder is handed besides them (the
declared needs: a query, the teacher-forced target, batch fields).

Selectors are registered in SELECTORS: "all" is here; selectors that read a batch transform's bookkeeping
(mixing roles) live beside that transform and build their Selection with `role_selection` / `stack_rows`.
"""
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..interfaces import BATCH, QUERY, TARGET_INPUT, Encoded, Query, Selection, need_keyword
from ..layers.positions import grid_centres, view_relative_positions
from ..registry import SELECTORS


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _positions(grid, idx: torch.Tensor) -> torch.Tensor:
    centres = grid_centres(*grid, device=idx.device)
    return centres[idx]


def select(enc: Encoded, how: str, batch: dict) -> Selection:
    """The Selection of a registered selector by name (evaluation code reads "all" this way)."""
    return SELECTORS.get(how)(enc, batch)


@SELECTORS.register("all")
def select_all(enc: Encoded, batch: dict) -> Selection:
    """Every token of every row."""
    b = enc.z.shape[0]
    dev = enc.z.device
    rows = torch.arange(b, device=dev)
    geom = batch.get("geometry", {}).get(enc.name)
    grid = enc.tokens.grid
    pad = enc.tokens.pad_mask
    # a token the encoder saw only as the mask token is not visible (loss_on "masked" reads it)
    seen = None if enc.replaced is None else ~enc.replaced
    if grid is None:  # text, speech: no grid, no positions
        return Selection(z=enc.z, rows=rows, pad_mask=pad, prefix=enc.prefix, visible=seen, view=enc.name)
    L = grid[0] * grid[1]
    idx = enc.keep if enc.keep is not None else torch.arange(L, device=dev).expand(b, -1)
    visible = torch.zeros(b, L, dtype=torch.bool, device=dev).scatter(1, idx, True)
    if seen is not None:
        visible = visible & seen
    return Selection(z=enc.z, rows=rows, pos=_positions(grid, idx), token_index=idx, visible=visible,
                     grid=grid, geometry=geom, prefix=enc.prefix, view=enc.name)


def role_selection(enc: Encoded, mine: torch.Tensor, rows: torch.Tensor, *, geometry: Optional[torch.Tensor],
                   view: Optional[str], count: Optional[int] = None) -> Selection:
    """The grid tokens where `mine` (B, L) is True, in grid order, as rows `rows` (the samples they show).
    Every row must hold the same number of tokens (a mixer gives each image an exact count). `count`: that
    number, when the mixer knows it on the host; otherwise it is read from `mine` (a device sync) and checked."""
    if count is not None:
        k = count
    else:
        counts = mine.sum(1)
        if counts.numel() and bool((counts != counts[0]).any()):
            raise ConfigError("a role selection needs the same number of tokens in every row; the batch "
                              "transform gave " + ", ".join(str(int(c)) for c in counts.unique()))
        k = int(counts[0]) if counts.numel() else 0
    idx = mine.float().argsort(dim=1, descending=True, stable=True)[:, :k].sort(dim=1).values
    z = _gather(enc.z[:, enc.prefix:], idx)
    return Selection(z=z, rows=rows, pos=_positions(enc.tokens.grid, idx), token_index=idx, visible=mine,
                     grid=enc.tokens.grid, geometry=geometry, prefix=0, view=view)


def stack_rows(parts: Sequence[Selection]) -> Selection:
    """Several selections of one input stacked as rows (each image in each of its roles); token counts may
    differ between parts, the shorter are padded and pad_mask says so."""
    first = parts[0]
    counts = [s.z.shape[1] for s in parts]
    k, dev = max(counts), first.z.device

    def cat(ts: List[torch.Tensor]) -> torch.Tensor:
        ts = [F.pad(t, (0, 0) * (t.dim() - 2) + (0, k - t.shape[1])) for t in ts]
        return torch.cat(ts, 0)
    pad = None
    if len(set(counts)) > 1:
        per_row = torch.tensor([c for s, c in zip(parts, counts) for _ in range(s.z.shape[0])], device=dev)
        pad = torch.arange(k, device=dev) >= per_row.unsqueeze(1)
    return Selection(z=cat([s.z for s in parts]), rows=torch.cat([s.rows for s in parts]),
                     pos=cat([s.pos for s in parts]),
                     token_index=cat([s.token_index[..., None] for s in parts])[..., 0],
                     visible=torch.cat([s.visible for s in parts]), grid=first.grid,
                     geometry=torch.cat([s.geometry for s in parts]), pad_mask=pad, prefix=0, view=first.view)


def make_query(batch: dict, sel: Selection, target_view: str, target_grid) -> Query:
    """Target-view patch centres in the input view's frame, for each selected row."""
    b, dev = sel.z.shape[0], sel.z.device
    grid = target_grid or sel.grid
    geoms = batch.get("geometry", {})
    if target_view not in geoms or sel.geometry is None:
        pos = grid_centres(*grid, device=dev).expand(b, -1, -1)
        return Query(pos=pos, log_scale=torch.zeros(b, 2, device=dev), same_view=True)
    tgeom = geoms[target_view].index_select(0, sel.rows)
    pos, log_scale = view_relative_positions(tgeom, sel.geometry, grid)
    same = target_view == sel.view and tuple(grid) == tuple(sel.grid)
    return Query(pos=pos, log_scale=log_scale, same_view=same)


def _rows_of(value: Any, rows: torch.Tensor, batch_size: int) -> Any:
    if torch.is_tensor(value) and value.dim() and value.shape[0] == batch_size:
        return value.index_select(0, rows)
    return value


def gather_needs(needs: Sequence[str], batch: dict, sel: Selection, *, target_view: str, target_grid,
                 batch_size: int) -> Dict[str, Any]:
    """The keyword arguments a decoder declared (interfaces: "query", "target_input", "batch:<field>")."""
    out: Dict[str, Any] = {}
    for need in needs:
        if need == QUERY:
            out[QUERY] = make_query(batch, sel, target_view, target_grid)
        elif need == TARGET_INPUT:  # teacher forcing reads the target sequence
            out[TARGET_INPUT] = batch[target_view].index_select(0, sel.rows)
        elif need.startswith(BATCH):
            out[need_keyword(need)] = _rows_of(batch.get(need_keyword(need)), sel.rows, batch_size)
    return out
