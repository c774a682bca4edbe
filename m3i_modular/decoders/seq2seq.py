"""Seq2seq decoder (BART / T5 / TencentPretrain `decoder` + `tgt_embedding`): the teacher-forced target
sequence enters through the decoder's own input embedding, causal self-attention runs over it and
cross-attention reads the encoder's tokens z_x. Position t reads target token t and answers for the next
token, so it pairs with a `tied_word` target embedding in mode "next" (index = token t+1).

It declares the need "target_input": the objective hands over the rows of batch[target_view] that the
selection kept.
"""
from typing import Any

import torch
from torch import nn

from ..embeddings import build_embedding
from ..encoders.transformer import _init_weights
from ..interfaces import Selection
from ..layers.cross_block import DecoderBlock
from ..registry import DECODERS, config_error


@DECODERS.register("seq2seq")
class Seq2SeqDecoder(nn.Module):
    needs = ("target_input",)  # teacher forcing reads the target sequence

    def __init__(self, *, in_dim: int, out_dim: int, input_embedding: Any, layers: int, heads: int,
                 dim: int = 0, mlp_ratio: float = 4.0, norm: str = "post", dropout: float = 0.0,
                 eps: float = 1e-6, pad_id: int = 0):
        super().__init__()
        if layers < 1:
            raise config_error(f"layers must be >= 1, got {layers}", "layers")
        if norm not in ("pre", "post"):
            raise config_error(f"norm must be pre or post, got {norm!r}", "norm")
        self.embedding = build_embedding(input_embedding, key="input_embedding")
        emb_dim = self.embedding.dim
        self.dim, self.pad_id = dim or emb_dim, pad_id  # default: the input embedding's width
        if emb_dim != self.dim:
            raise config_error(f"dim {self.dim} differs from the input embedding's dim {emb_dim}", "dim")
        if self.dim % heads:
            raise config_error(f"dim {self.dim} is not divisible by heads {heads}", "heads")
        # z_x may be wider or narrower than the decoder (an encoder-decoder with two widths)
        self.memory_proj = nn.Linear(in_dim, self.dim) if in_dim != self.dim else nn.Identity()
        self.blocks = nn.ModuleList(DecoderBlock(dim=self.dim, heads=heads, mlp_ratio=mlp_ratio, norm=norm,
                                                 dropout=dropout, eps=eps) for _ in range(layers))
        self.norm = nn.LayerNorm(self.dim, eps=eps) if norm == "pre" else nn.Identity()
        self.proj = nn.Linear(self.dim, out_dim) if out_dim != self.dim else nn.Identity()
        self.blocks.apply(_init_weights)
        self.memory_proj.apply(_init_weights)
        self.proj.apply(_init_weights)

    def forward(self, sel: Selection, *, target_input: torch.Tensor) -> torch.Tensor:
        tokens = self.embedding(target_input)
        x = tokens.x
        self_mask = None
        if tokens.pad_mask is not None and bool(tokens.pad_mask.any()):
            # padded keys are never read; each position keeps itself so a padded row has no empty softmax
            n = x.shape[1]
            eye = torch.eye(n, dtype=torch.bool, device=x.device)
            self_mask = (~tokens.pad_mask)[:, None, None, :] | eye
        memory = self.memory_proj(sel.z)
        memory_pad = None
        if sel.pad_mask is not None and bool(sel.pad_mask.any()):
            memory_pad = sel.pad_mask & ~sel.pad_mask.all(1, keepdim=True)  # an all-padding row reads all
        for blk in self.blocks:
            x = blk(x, memory, self_mask, memory_pad)
        return self.proj(self.norm(x))
