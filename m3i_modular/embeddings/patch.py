"""Image -> patch tokens, with learned or fixed 2-D sin-cos positions (ViT / MAE)."""
from typing import Optional

import torch
from torch import nn

from ..layers.positions import grid_centres, sincos_2d
from ..registry import EMBEDDINGS
from ..interfaces import Tokens


@EMBEDDINGS.register("patch")
class PatchEmbedding(nn.Module):
    def __init__(self, *, image_size: int, patch_size: int, dim: int, in_chans: int = 3,
                 pos: str = "sincos", cls_token: bool = False):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if pos not in ("learned", "sincos", "none"):
            raise ValueError(f"pos must be learned, sincos or none, got {pos!r}")
        self.patch_size, self.dim = patch_size, dim
        self.grid = (image_size // patch_size, image_size // patch_size)
        # the image size its positions are built for (checked against the views at build time); any without
        self.input_size = (image_size, image_size) if pos != "none" else None
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        n = self.grid[0] * self.grid[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        elif pos == "sincos":
            table = sincos_2d(grid_centres(*self.grid) * torch.tensor(self.grid[::-1]) - 0.5, dim)
            self.register_buffer("pos_embed", table.unsqueeze(0), persistent=False)
        else:
            self.pos_embed = None
        # MAE initialises the patch projection like a linear layer (xavier on the flattened kernel).
        w = self.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, image: torch.Tensor, tokens: Optional[Tokens] = None) -> Tokens:
        x = self.proj(image)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.pos_embed is not None:
            if grid != self.grid:
                raise ValueError(f"image gives a {grid} patch grid, the embedding was built for {self.grid}")
            x = x + self.pos_embed.to(x.dtype)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return Tokens(x=x, grid=grid, patch_size=self.patch_size, prefix=self.num_prefix)

    @property
    def num_prefix(self) -> int:
        """Leading non-grid tokens (the CLS token); the model reads it from Tokens.prefix."""
        return 0 if self.cls_token is None else 1


