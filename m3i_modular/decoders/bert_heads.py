"""Per-token head: BERT's MLM transform (Linear -> GELU -> LayerNorm), or an identity / projection for
GPT whose final norm is in the encoder. The vocabulary logits come from the tied target embedding."""
import torch
from torch import nn

from ..interfaces import Selection
from ..registry import DECODERS


@DECODERS.register("mlm_head")
class TokenHead(nn.Module):
    """BERT's MLM transform (dense, GELU, LayerNorm) before the tied vocabulary scores of the target."""

    def __init__(self, *, in_dim: int, out_dim: int, transform: bool = True, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(in_dim, in_dim) if transform else None
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(in_dim, eps=eps) if transform else None
        self.proj = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()
        if self.dense is not None:
            nn.init.normal_(self.dense.weight, std=0.02)
            nn.init.zeros_(self.dense.bias)

    def forward(self, sel: Selection) -> torch.Tensor:
        z = sel.z
        if self.dense is not None:
            z = self.norm(self.act(self.dense(z)))
        return self.proj(z)


@DECODERS.register("cls_pooler")
class ClsPooler(nn.Module):
    """BERT's pooler + sentence head: the first token -> Linear -> tanh -> Linear (NSP / SOP heads of
    converted checkpoints keep their exact function)."""

    def __init__(self, *, in_dim: int, out_dim: int):
        super().__init__()
        self.dense = nn.Linear(in_dim, in_dim)
        self.out = nn.Linear(in_dim, out_dim)

    def forward(self, sel: Selection) -> torch.Tensor:
        return self.out(torch.tanh(self.dense(sel.z[:, 0])))
