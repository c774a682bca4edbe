"""A View: an augmented image that remembers where it came from in its source image.

Geometry convention: `box` = (x0, y0, x1, y1) is the region of the SOURCE image the view shows, in
normalised source coordinates ([0, 1] spans the whole source, edges not pixel centres). `flip` says the view
is mirrored left-right relative to that region. A point (u, v) in normalised view coordinates therefore comes
from source point (x0 + (1 - u if flip else u) * (x1 - x0), y0 + v * (y1 - y0)). Resizing and photometric
transforms leave the geometry alone; crops compose boxes and flips toggle `flip`, so this map stays exact.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch

Box = Tuple[float, float, float, float]


@dataclass
class View:
    image: torch.Tensor                      # float (3, H, W), in [0, 1] until `normalize`
    box: Box = (0.0, 0.0, 1.0, 1.0)
    flip: bool = False
    mask: Optional[torch.Tensor] = None      # bool (L,), True = masked patch, row-major over the patch grid

    @classmethod
    def from_uint8(cls, image: torch.Tensor) -> "View":
        """The identity view of a raw uint8 (3, H, W) image."""
        return cls(image=image.float().div_(255.0))

    def to_source(self, u, v):
        """Map normalised view coordinates (scalars or tensors) to normalised source coordinates."""
        x0, y0, x1, y1 = self.box
        u = 1.0 - u if self.flip else u
        return x0 + u * (x1 - x0), y0 + v * (y1 - y0)

    def cropped(self, image: torch.Tensor, sub: Box) -> "View":
        """A view of `image` showing the sub-box `sub` of this view (normalised view coordinates)."""
        _check_unmasked(self)
        a0, b0, a1, b1 = sub
        x0, y0, x1, y1 = self.box
        w, h = x1 - x0, y1 - y0
        if self.flip:  # view u runs right-to-left over the source box
            nx0, nx1 = x0 + (1.0 - a1) * w, x0 + (1.0 - a0) * w
        else:
            nx0, nx1 = x0 + a0 * w, x0 + a1 * w
        return replace(self, image=image, box=(nx0, y0 + b0 * h, nx1, y0 + b1 * h))

    def flipped(self) -> "View":
        _check_unmasked(self)
        return replace(self, image=self.image.flip(-1), flip=not self.flip)

    def geometry(self) -> torch.Tensor:
        """float (5,) = x0, y0, x1, y1, flip, the row this view contributes to batch["geometry"]."""
        return torch.tensor([*self.box, float(self.flip)], dtype=torch.float32)


def _check_unmasked(view: View) -> None:
    # a mask indexes the patch grid it was drawn on; moving pixels afterwards would silently misalign it
    if view.mask is not None:
        raise ValueError("crop, resize or flip a view before masking it, not after")
