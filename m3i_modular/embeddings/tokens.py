"""What an embedding hands to the encoder."""
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch


@dataclass
class Tokens:
    x: torch.Tensor                              # (B, N, D)
    grid: Optional[Tuple[int, int]] = None       # patch grid (h, w) for image tokens
    pad_mask: Optional[torch.Tensor] = None      # (B, N) bool, True = padding (text)
    patch_size: Optional[int] = None

    def with_x(self, x: torch.Tensor) -> "Tokens":
        return replace(self, x=x)
