"""`mix_views`: M3I's cross-sample input. The pixels of image A's view and image B's view are
combined under a block map aligned to the token stride; B is the roll-paired sample i - 1, so image i is A in
mixed input i and B in input i + 1 and every image feeds every objective.

Writes batch["views"][output], batch["mix"][output] = {"owner": (B, L) long, 0 = A, 1 = B, "shift": 1,
"source": source, "count": (tokens of A, tokens of B) in every row, known on the host} (read by the selectors
"a", "b" and "both" registered below) and, with attention "within", batch["attn_masks"][output]. Randomness
comes from the global torch RNG, which the trainer saves and restores, so a resumed run draws the same maps.
"""
from typing import Tuple

import torch
from torch import nn

from ..errors import ConfigError
from ..interfaces import Encoded, Selection
from ..registry import BATCH_TRANSFORMS, SELECTORS, config_error
from ..selectors.selection import role_selection, stack_rows


def block_owner_map(batch: int, grid: Tuple[int, int], block: int, n_b: int, *,
                    device=None, generator=None) -> torch.Tensor:
    """(batch, h*w) long: exactly `n_b` ones per row (image B), laid out in block x block token squares.

    Blocks get random ranks; tokens inherit their block's rank and are ordered inside a block row-major, so
    taking the first n_b tokens fills whole blocks and at most one block is split (exact counts even when
    n_b is not a multiple of the block area)."""
    h, w = grid
    bh, bw = -(-h // block), -(-w // block)
    rank = torch.rand(batch, bh * bw, device=device, generator=generator).argsort(1).float()
    ys = torch.arange(h, device=device) // block
    xs = torch.arange(w, device=device) // block
    blk = (ys[:, None] * bw + xs[None, :]).reshape(-1)                       # (L,) block of each token
    within = ((torch.arange(h, device=device) % block)[:, None] * block
              + (torch.arange(w, device=device) % block)[None, :]).reshape(-1).float()
    key = rank[:, blk] * (block * block) + within                            # distinct keys per row
    order = key.argsort(1)
    owner = torch.zeros(batch, h * w, dtype=torch.long, device=device)
    owner.scatter_(1, order[:, :n_b], 1)
    return owner


@BATCH_TRANSFORMS.register("mix_views")
class MixViews(nn.Module):
    """ratio: share of the L token positions given to image B (A keeps L - round(ratio * L)).
    block: side of the mixing blocks, in tokens. patch_size: the token stride in pixels (the embedding's).
    attention: "across" (M3I's default: every token attends to both images) or "within" (a token attends
    only to its own image's tokens, as MixMIM does; the encoder then cannot blend the two images, which lets
    small models learn the global objectives from a mixed input)."""

    def __init__(self, *, patch_size: int, ratio: float = 0.5, block: int = 1, source: str = "view1",
                 output: str = "mixed", pairing: str = "roll", attention: str = "across"):
        super().__init__()
        if not 0.0 < ratio < 1.0:
            raise config_error(f"ratio must be in (0, 1) (both images need tokens), got {ratio}", "ratio")
        if block < 1:
            raise config_error(f"block must be >= 1 token, got {block}", "block")
        if patch_size < 1:
            raise config_error(f"patch_size must be >= 1 pixel, got {patch_size}", "patch_size")
        if pairing != "roll":
            raise config_error(f"unknown pairing '{pairing}' (valid: roll)", "pairing")
        if attention not in ("across", "within"):
            raise config_error(f"unknown attention '{attention}' (valid: across, within)", "attention")
        self.patch_size, self.ratio, self.block, self.attention = patch_size, ratio, block, attention
        self.source, self.output, self.shift = source, output, 1

    def forward(self, batch: dict) -> dict:
        views = batch.get("views", {})
        if self.source not in views:
            raise config_error(f"mix_views reads view '{self.source}', which the batch does not have "
                               f"(views: {', '.join(views) or 'none'})", "source")
        img = views[self.source]
        b, _, hp, wp = img.shape
        p = self.patch_size
        if hp % p or wp % p:
            raise config_error(f"view '{self.source}' is {hp}x{wp} pixels, not a multiple of patch_size {p}",
                               "patch_size")
        grid = (hp // p, wp // p)
        L = grid[0] * grid[1]
        n_b = int(round(self.ratio * L))
        if not 0 < n_b < L:
            raise config_error(f"ratio {self.ratio} of {L} tokens leaves one image without tokens", "ratio")
        owner = block_owner_map(b, grid, self.block, n_b, device=img.device)
        # pixel map: each token's owner covers its p x p patch
        pix = owner.view(b, 1, grid[0], 1, grid[1], 1).expand(b, 1, grid[0], p, grid[1], p)
        pix = pix.reshape(b, 1, hp, wp).bool()
        partner = img.roll(self.shift, dims=0)                  # input i holds image i - shift as B
        mixed = torch.where(pix, partner, img)
        out = dict(batch)
        out["views"] = dict(views, **{self.output: mixed})
        info = {"owner": owner, "shift": self.shift, "source": self.source, "count": (L - n_b, n_b)}
        out["mix"] = dict(batch.get("mix", {}), **{self.output: info})
        if self.attention == "within":
            mask = (owner[:, :, None] == owner[:, None, :]).unsqueeze(1)                # (B, 1, L, L)
            out["attn_masks"] = dict(batch.get("attn_masks", {}), **{self.output: mask})
        return out


# -- the roles of a mixed input, as an objective's "select" ------------------------------------------------

def _role(enc: Encoded, batch: dict, role: int, how: str) -> Selection:
    mix = batch.get("mix", {}).get(enc.name)
    if mix is None:
        raise ConfigError(f"select '{how}' needs a mixed input, but input '{enc.name}' is not made by a "
                          f"mixing batch transform: use select 'all' or mix the views first")
    b = enc.z.shape[0]
    rows = torch.arange(b, device=enc.z.device)
    if role == 1:
        rows = (rows - mix["shift"]) % b                   # input i holds image i - shift as B
    geometry = batch["geometry"][mix["source"]].index_select(0, rows)
    return role_selection(enc, mix["owner"] == role, rows, geometry=geometry, view=mix["source"],
                          count=mix.get("count", (None, None))[role])  # known on the host: no device sync


@SELECTORS.register("a")
def select_a(enc: Encoded, batch: dict) -> Selection:
    """Image A's tokens of a mixed input (row i: sample i)."""
    return _role(enc, batch, 0, "a")


@SELECTORS.register("b")
def select_b(enc: Encoded, batch: dict) -> Selection:
    """Image B's tokens of a mixed input (row i: sample i - shift, the roll-paired partner)."""
    return _role(enc, batch, 1, "b")


@SELECTORS.register("both")
def select_both(enc: Encoded, batch: dict) -> Selection:
    """A's rows then B's rows: every image once in each role (global objectives average the two)."""
    return stack_rows([select_a(enc, batch), select_b(enc, batch)])
