"""InternImage's stem as an embedding: two stride-2 3x3 convs (stride 4 in all) -> channels-last tokens.

The encoder `intern_image` continues from these tokens; it reports the grid of its own output through
`output_grid`, so the objectives see the final map, not the stem's.
"""
from typing import Optional

import torch
from torch import nn

from ..registry import EMBEDDINGS, config_error
from ..interfaces import Tokens


@EMBEDDINGS.register("intern_image_stem")
class InternImageStem(nn.Module):
    def __init__(self, *, dim: int, in_chans: int = 3, norm: str = "ln", eps: float = 1e-6):
        super().__init__()
        if dim % 2:
            raise config_error(f"dim must be even (the first conv has dim/2 channels), got {dim}", "dim")
        if norm not in ("ln", "bn"):
            raise config_error(f"norm must be 'ln' (InternImage's default) or 'bn', got {norm!r}", "norm")
        self.dim, self.patch_size = dim, 4
        self.conv1 = nn.Conv2d(in_chans, dim // 2, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(dim // 2, dim, kernel_size=3, stride=2, padding=1)
        # Norms act channels-last (LayerNorm) or channels-first (BatchNorm); see _norm.
        if norm == "ln":
            self.norm1, self.norm2 = nn.LayerNorm(dim // 2, eps=eps), nn.LayerNorm(dim, eps=eps)
        else:
            self.norm1, self.norm2 = nn.BatchNorm2d(dim // 2), nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        for m in (self.norm1, self.norm2):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @staticmethod
    def _norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if isinstance(norm, nn.LayerNorm):
            return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return norm(x)

    def forward(self, image: torch.Tensor, tokens: Optional[Tokens] = None) -> Tokens:
        x = self.act(self._norm(self.norm1, self.conv1(image)))
        x = self._norm(self.norm2, self.conv2(x))
        grid = (x.shape[2], x.shape[3])
        return Tokens(x=x.flatten(2).transpose(1, 2), grid=grid, patch_size=self.patch_size)
