"""The data passed between an objective's parts (DESIGN §2): the selected online tokens, the query for a
predictor, and what a target embedding returns."""
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch


@dataclass
class Selection:
    """The online tokens one objective reads (e.g. image A's tokens of a mixed input)."""
    z: torch.Tensor                                  # (B', K, D) encoder output of the selected tokens
    rows: torch.Tensor                               # (B',) which batch sample each row belongs to
    pos: Optional[torch.Tensor] = None               # (B', K, 2) token centres in input-view coordinates
    token_index: Optional[torch.Tensor] = None       # (B', K) positions of the tokens in the input's grid
    visible: Optional[torch.Tensor] = None           # (B', L) bool: grid positions present in z
    grid: Optional[Tuple[int, int]] = None
    geometry: Optional[torch.Tensor] = None          # (B', 5) crop box + flip of the row's input view
    pad_mask: Optional[torch.Tensor] = None          # (B', K) bool, True = padding (text)
    prefix: int = 0                                  # leading non-grid tokens in z (a CLS token)


@dataclass
class Query:
    """Where a predictor must answer: target-view patch centres in input-view coordinates."""
    pos: torch.Tensor                                # (B', M, 2)
    log_scale: torch.Tensor                          # (B', 2) log(target size / input size)
    same_view: bool                                  # the target grid is the input grid (MAE-style fill)


@dataclass
class TargetOut:
    """z_y for each sample, or candidates with the index of the right one; `valid` marks usable samples."""
    valid: torch.Tensor                              # (B,) bool
    value: Optional[torch.Tensor] = None             # (B, ...) regression targets
    candidates: Optional[torch.Tensor] = None        # (K, D) candidate embeddings (classes, vocabulary, batch)
    bias: Optional[torch.Tensor] = None              # (K,) per-candidate logit bias
    index: Optional[torch.Tensor] = None             # (B,) or (B, M) index of the right candidate
    grid: Optional[Tuple[int, int]] = None           # patch grid of per-token targets
    candidates_per_row: bool = False                 # candidates are per sample (batch negatives)
    candidate_valid: Optional[torch.Tensor] = None   # (K,) bool: usable candidates (a missing caption is not)

    def take(self, rows: torch.Tensor) -> "TargetOut":
        """The targets for selected rows (a roll-paired B role reads sample i-1)."""
        pick = lambda t: None if t is None else t.index_select(0, rows)  # noqa: E731
        out = replace(self, valid=pick(self.valid), value=pick(self.value), index=pick(self.index))
        return out
