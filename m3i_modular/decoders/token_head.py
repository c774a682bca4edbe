"""`token_head`: a per-token head (SimMIM's linear decoder, HuBERT's projection): every selected token's
encoder output -> a prediction of that token's target. No positions or mask tokens are added here, so it
suits mask_mode "replace", where masked tokens went through the encoder as the mask token."""
import torch
from torch import nn

from ..interfaces import Selection
from ..registry import DECODERS
from .pool import make_head


@DECODERS.register("token_head")
class TokenHead(nn.Module):

    def __init__(self, *, in_dim: int, out_dim: int, head: str = "linear", hidden: int = 0, layers: int = 2,
                 mlp_norm: str = "layer"):
        super().__init__()
        self.head = make_head(head, in_dim, out_dim, hidden, layers, mlp_norm)

    def forward(self, sel: Selection) -> torch.Tensor:
        z = sel.z[:, sel.prefix:]
        b, n, d = z.shape
        return self.head(z.reshape(b * n, d)).reshape(b, n, -1)  # flat rows: a BatchNorm head works too
