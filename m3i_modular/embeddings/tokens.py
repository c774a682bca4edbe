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
    pos: Optional[torch.Tensor] = None           # (1 or B, N, D) the position part added to x, kept so a
                                                 # masked token (mask_mode "replace") is mask token + position

    def with_x(self, x: torch.Tensor) -> "Tokens":
        return replace(self, x=x)


def encoder_output_tokens(encoder, tokens: Tokens, z: torch.Tensor) -> Tokens:
    """The layout of an encoder's output z. An encoder that changes the token grid (a strided conv net)
    says so through `output_grid(grid)`; the grid and patch size (stride in pixels) then follow it.
    Encoders without it keep the embedding's layout. Use this wherever a tower's output grid matters
    (the online tower in model.encode, an EMA copy producing per-token targets)."""
    if not hasattr(encoder, "output_grid") or tokens.grid is None:
        return tokens
    grid = tuple(encoder.output_grid(tuple(tokens.grid)))
    patch = tokens.patch_size
    if patch is not None and grid[0]:
        patch = patch * -(-tokens.grid[0] // grid[0])  # ceil: the stride of the output map
    return replace(tokens, x=z, grid=grid, patch_size=patch)
