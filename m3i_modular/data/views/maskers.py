"""Maskers: transforms that set `view.mask`, a bool (L,) over the view's patch grid (row-major, True =
masked). Both mask exactly round(ratio * L) patches, so every sample of a batch hides the same count and an
MAE-style encoder can gather a rectangular tensor of visible tokens.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional, Tuple

import torch

from ...errors import DataError
from ...registry import TRANSFORMS, config_error
from .transforms import Transform
from .view import View


def patch_grid(view: View, patch_size: int) -> Tuple[int, int]:
    H, W = view.image.shape[-2:]
    if H % patch_size or W % patch_size:
        raise DataError(f"a {H}x{W} view does not split into {patch_size}-pixel patches; "
                        f"resize or crop the view to a multiple of {patch_size} before the masker")
    return H // patch_size, W // patch_size


def _check(patch_size: int, ratio: float) -> None:
    if patch_size < 1:
        raise config_error(f"patch_size must be >= 1, got {patch_size}", "patch_size")
    if not 0.0 <= ratio < 1.0:
        raise config_error(f"ratio must be in [0, 1), got {ratio}", "ratio")


class Masker(Transform):
    masker = True

    def __init__(self, *, patch_size: int, ratio: float):
        _check(patch_size, ratio)
        self.patch_size, self.ratio = patch_size, float(ratio)

    def count(self, num_patches: int) -> int:
        return int(round(self.ratio * num_patches))


@TRANSFORMS.register("random_mask")
class RandomMask(Masker):
    """Uniformly random patches (MAE)."""

    def __call__(self, view: View, g: torch.Generator) -> View:
        gh, gw = patch_grid(view, self.patch_size)
        n = gh * gw
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=g)[:self.count(n)]] = True
        return replace(view, mask=mask)


@TRANSFORMS.register("block_mask")
class BlockMask(Masker):
    """Rectangular blocks (BEiT / SimMIM): each block covers between `min_block` and `max_block` patches
    (default: all that remain to mask) with aspect ratio log-uniform in `aspect`; blocks are added while they
    fit the remaining budget, and after `attempts` failed draws the rest is topped up with single random
    patches, so the count is exact."""

    def __init__(self, *, patch_size: int, ratio: float, min_block: int = 4, max_block: Optional[int] = None,
                 aspect: Tuple[float, float] = (0.3, 1 / 0.3), attempts: int = 10):
        super().__init__(patch_size=patch_size, ratio=ratio)
        if min_block < 1:
            raise config_error(f"min_block must be >= 1, got {min_block}", "min_block")
        if max_block is not None and max_block < min_block:
            raise config_error(f"max_block ({max_block}) must be >= min_block ({min_block})", "max_block")
        if len(aspect) != 2 or not 0 < aspect[0] <= aspect[1]:
            raise config_error(f"aspect must be [min, max] with 0 < min <= max, got {list(aspect)}", "aspect")
        self.min_block, self.max_block = min_block, max_block
        self.log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
        self.attempts = attempts

    def __call__(self, view: View, g: torch.Generator) -> View:
        gh, gw = patch_grid(view, self.patch_size)
        grid = torch.zeros(gh, gw, dtype=torch.bool)
        left = self.count(gh * gw)
        misses = 0
        while left > 0 and misses < self.attempts:
            hi = min(left, self.max_block or left)
            if hi < self.min_block:
                break
            u = torch.rand(4, generator=g).tolist()
            area = self.min_block + u[0] * (hi - self.min_block)
            aspect = math.exp(self.log_aspect[0] + u[1] * (self.log_aspect[1] - self.log_aspect[0]))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if not (0 < h <= gh and 0 < w <= gw):
                misses += 1
                continue
            top, lft = int(u[2] * (gh - h + 1)), int(u[3] * (gw - w + 1))
            block = grid[top:top + h, lft:lft + w]
            new = int((~block).sum())
            if 0 < new <= left:
                block.fill_(True)
                left -= new
                misses = 0
            else:
                misses += 1
        mask = grid.flatten()
        if left > 0:  # top up to the exact count
            free = (~mask).nonzero().flatten()
            mask[free[torch.randperm(len(free), generator=g)[:left]]] = True
        return replace(view, mask=mask)
