"""Transformer encoder (ViT / BERT / GPT): tokens -> z_x, optionally on visible tokens only (MAE)."""
from typing import List, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..interfaces import Tokens
from ..layers.block import TransformerBlock
from ..registry import ENCODERS


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    """act: the MLP's activation -- "gelu" (exact), "gelu_tanh" (GPT-2), "quick_gelu" (OpenAI CLIP)."""

    def __init__(self, *, layers: int, heads: int, dim: int, mlp_ratio: float = 4.0, norm: str = "pre",
                 causal: bool = False, drop_path: float = 0.0, dropout: float = 0.0, qkv_bias: bool = True,
                 final_norm: bool = True, checkpointing: bool = False, eps: float = 1e-6,
                 act: str = "gelu"):
        super().__init__()
        self.dim, self.causal, self.checkpointing = dim, causal, checkpointing
        self.input_dim = dim  # the token width it takes (checked against the embedding's at build time)
        rates = [drop_path * i / max(layers - 1, 1) for i in range(layers)]  # linear stochastic-depth rule
        self.blocks = nn.ModuleList(
            TransformerBlock(dim=dim, heads=heads, mlp_ratio=mlp_ratio, norm=norm, qkv_bias=qkv_bias,
                             drop_path=r, dropout=dropout, eps=eps, act=act) for r in rates)
        # Post-norm blocks end in a norm already; pre-norm stacks need one at the end.
        self.norm = nn.LayerNorm(dim, eps=eps) if (final_norm and norm == "pre") else nn.Identity()
        self.apply(_init_weights)

    def forward(self, tokens: Tokens, keep: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None, return_layers: bool = False):
        """keep: (B, K) indices of the tokens to encode (the rest are dropped, MAE-style).
        Returns z (B, N or K, D), or (z, per-layer outputs before the final norm) with return_layers."""
        x = tokens.x
        pad = tokens.pad_mask
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            pad = None if pad is None else torch.gather(pad, 1, keep)
        if attn_mask is None and pad is not None and bool(pad.any()):
            attn_mask = (~pad)[:, None, None, :]
        hidden: List[torch.Tensor] = []
        for blk in self.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(blk, x, attn_mask, self.causal, use_reentrant=False)
            else:
                x = blk(x, attn_mask, self.causal)
            if return_layers:
                hidden.append(x)
        z = self.norm(x)
        return (z, hidden) if return_layers else z


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
