"""`momentum`: an EMA copy of named model parts (BYOL, MoCo, data2vec, SiameseIM, M3I's image targets).

The copy is made in bind(model), after assembly, so it starts equal to the online weights; it has no
gradient and runs in eval mode (no dropout / drop-path in the teacher); with batch_norm "batch" its BatchNorm
layers normalise with the current batch's statistics while training, as BYOL's and MoCo v3's target networks
do. The momentum follows a cosine from `momentum[0]` to `momentum[1]` over train.total_steps, updated in
after_optimizer_step; after --init-from the copy restarts from the (loaded) online weights.
"""
import copy
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import Borrowed, Selection, TargetOut, encoder_output_tokens, resolve_part
from ..registry import TARGET_EMBEDDINGS, config_error
from .online import pool_tokens_all


@TARGET_EMBEDDINGS.register("momentum")
class MomentumTower(nn.Module):
    """of: model parts to copy, in order: an embedding, an encoder, then optional heads applied to the pooled
    or per-token Selection (a projector decoder, e.g. "objectives.byol.decoder.head" -- any dotted path).
    feature: "last_block" (the last block's output, before the encoder's final norm), "output", or "top_k"
    (data2vec: the average of the last `top_k` blocks' outputs, each instance-normalised over its tokens).
    norm: "layernorm" (LayerNorm without affine parameters, SiameseIM / M3I) or "none".
    pool: "none" (per-token targets with their grid), "mean" or "cls" (one vector per image).
    dim: the output width; 0 = the online encoder's (set it when a head changes the width, or when `of`
    copies another encoder).
    batch_norm: "running" (the teacher's BatchNorm layers use their running statistics, copied from the online
    model) or "batch" (while training they use the batch's statistics: BYOL / MoCo v3 projector heads)."""

    def __init__(self, *, of: List[str] = ("embedding", "encoder"), momentum: Tuple[float, float] = (0.99, 1.0),
                 feature: str = "last_block", norm: str = "layernorm", pool: str = "none", dim: int = 0,
                 eps: float = 1e-6, top_k: int = 0, batch_norm: str = "running", encoder_dim: int = 0):
        super().__init__()
        of = list(of)
        if len(of) < 2:
            raise config_error(f"'of' lists an embedding and an encoder (then optional heads), got {of}", "of")
        if len(momentum) != 2 or not all(0.0 <= m <= 1.0 for m in momentum):
            raise config_error(f"momentum is a [start, end] pair in [0, 1], got {list(momentum)}", "momentum")
        if feature not in ("last_block", "output", "top_k"):
            raise config_error(f"feature must be last_block, output or top_k, got '{feature}'", "feature")
        if (feature == "top_k") != (top_k > 0):
            raise config_error(f"top_k (> 0) goes with feature \"top_k\" and only with it; got feature "
                               f"'{feature}', top_k {top_k}", "top_k")
        if norm not in ("layernorm", "none"):
            raise config_error(f"norm must be layernorm or none, got '{norm}'", "norm")
        if batch_norm not in ("running", "batch"):
            raise config_error(f"batch_norm must be running or batch, got '{batch_norm}'", "batch_norm")
        self.batch_norm = batch_norm
        if pool not in ("none", "mean", "cls"):
            raise config_error(f"pool must be none, mean or cls, got '{pool}'", "pool")
        self.of, self.momentum = of, (float(momentum[0]), float(momentum[1]))
        self.feature, self.norm, self.pool, self.eps, self.top_k = feature, norm, pool, eps, top_k
        self.current_momentum = self.momentum[0]
        if not dim:
            if of[1] != "encoder" or not encoder_dim:  # the builder passes the online encoder's width only
                raise config_error(f"cannot read the width of '{of[1]}' here: set 'dim'", "dim")
            dim = encoder_dim
        self.dim = dim
        self.copies = nn.ModuleList()
        # the online parts it follows: references only, so they are not saved twice nor EMA'd into
        self._online = tuple(Borrowed(f"momentum source '{name}'") for name in of)

    # -- lifecycle --------------------------------------------------------------------------------------
    def bind(self, model: nn.Module) -> None:
        online = [resolve_part(model, name) for name in self.of]
        blocks = getattr(online[1], "blocks", None)
        if self.top_k and blocks is not None and self.top_k > len(blocks):  # fail at build, not mid-run
            raise config_error(f"momentum top_k is {self.top_k} but '{self.of[1]}' has {len(blocks)} blocks: "
                               f"set top_k <= {len(blocks)}", "top_k")
        for ref, module in zip(self._online, online):
            ref.set(module)
        self.copies = nn.ModuleList(copy.deepcopy(m) for m in online)
        for p in self.copies.parameters():
            p.requires_grad_(False)
        self.copies.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.copies.eval()                         # no dropout / drop-path in the teacher
        if mode and self.batch_norm == "batch":
            for m in self.copies.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()                      # batch statistics; the buffers are re-copied each step
        return self

    def momentum_at(self, step: int, total_steps: int) -> float:
        start, end = self.momentum
        t = min(max(step / max(total_steps, 1), 0.0), 1.0)
        return end - (end - start) * 0.5 * (1.0 + math.cos(math.pi * t))

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        m = self.momentum_at(step, total_steps)
        self.current_momentum = m
        for ref, dst in zip(self._online, self.copies):
            src = ref.get()
            ema = list(dst.parameters())
            cur = [p.detach() for p in src.parameters()]
            if ema:
                torch._foreach_mul_(ema, m)
                torch._foreach_add_(ema, cur, alpha=1.0 - m)
            for b_dst, b_src in zip(dst.buffers(), src.buffers()):
                b_dst.copy_(b_src)

    @torch.no_grad()
    def after_init_from(self) -> None:
        for ref, dst in zip(self._online, self.copies):
            dst.load_state_dict(ref.get().state_dict())

    # -- targets ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, batch: dict, *, view: str) -> TargetOut:
        views = batch.get("views", {})
        if view not in views:
            raise config_error(f"momentum target reads view '{view}', which the batch does not have "
                               f"(views: {', '.join(views) or 'none'})")
        emb, enc, *heads = self.copies
        tokens = emb(views[view])
        z, hidden = enc(tokens, return_layers=True)
        if self.feature == "last_block":
            z = hidden[-1]
        elif self.feature == "top_k":
            z = top_k_average(hidden, self.top_k)
        tokens = encoder_output_tokens(enc, tokens, z)  # a strided encoder changes the grid
        if self.norm == "layernorm":
            z = F.layer_norm(z.float(), z.shape[-1:], eps=self.eps)
        prefix = tokens.prefix
        b = z.shape[0]
        valid = torch.ones(b, dtype=torch.bool, device=z.device)
        rows = torch.arange(b, device=z.device)
        if self.pool == "none":
            out = z[:, prefix:]
            for h in heads:
                out = h(Selection(z=out, rows=rows, grid=tokens.grid))
            return TargetOut(valid=valid, value=out, grid=tokens.grid)
        out = pool_tokens_all(z, self.pool, prefix)
        for h in heads:
            out = h(Selection(z=out.unsqueeze(1), rows=rows))
        return TargetOut(valid=valid, value=out, candidates=out, index=rows, candidates_per_row=True,
                         candidate_valid=valid)


def instance_norm_tokens(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(B, N, D): each sample's channels to zero mean and unit (biased) variance over its N tokens, as
    data2vec's F.instance_norm on (B, D, N); no affine parameters."""
    x = x.float()
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    return (x - mean) / (var + eps).sqrt()


def top_k_average(hidden: List[torch.Tensor], k: int, eps: float = 1e-5) -> torch.Tensor:
    """data2vec's target: the mean of the last k blocks' outputs, each instance-normalised first so that no
    block's scale dominates the average."""
    return sum(instance_norm_tokens(h, eps) for h in hidden[-k:]) / k
