"""Gaussian p(z_y | z_hat): L2-type regression (MAE, SimMIM, BYOL's 2-2cos, data2vec's smooth-L1) and
UniGrad's second-moment anti-collapse term (M3I / SiameseIM)."""
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..interfaces import TargetOut
from ..registry import TARGETS
from .collapse import batch_std, effective_rank
from .reduce import global_count, masked_mean


def second_moment(t: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """C = T^T T / M over all valid target tokens of all ranks, without gradient."""
    t = t.detach().float().reshape(-1, t.shape[-1])
    w = weights.reshape(-1, 1).float()
    c = (t * w).T @ t
    m = weights.detach().float().sum()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(c)
        m = m.clone()
        dist.all_reduce(m)
    return c / m.clamp(min=1.0)


@TARGETS.register("gaussian")
class GaussianTarget(nn.Module):
    def __init__(self, *, loss: str = "mse", normalize: str = "none", second_moment_weight: float = 0.0,
                 beta: float = 1.0, eps: float = 1e-6, collapse_metrics: bool = True):
        super().__init__()
        self.collapse_metrics = collapse_metrics
        if loss not in ("mse", "smooth_l1", "cosine"):
            raise ValueError(f"loss must be mse, smooth_l1 or cosine, got {loss!r}")
        if normalize not in ("none", "layernorm", "l2"):
            raise ValueError(f"normalize must be none, layernorm or l2, got {normalize!r}")
        self.loss, self.normalize, self.smw, self.beta, self.eps = loss, normalize, second_moment_weight, beta, eps

    def forward(self, pred: torch.Tensor, tgt: TargetOut,
                loss_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        t = tgt.value.detach().float()
        p = pred.float()
        if self.normalize == "layernorm":
            t = F.layer_norm(t, t.shape[-1:], eps=self.eps)
        elif self.normalize == "l2":
            t = F.normalize(t, dim=-1)
        if self.loss == "mse":
            per = (p - t).pow(2).mean(-1)
        elif self.loss == "smooth_l1":
            per = F.smooth_l1_loss(p, t, reduction="none", beta=self.beta).mean(-1)
        else:  # BYOL: ||p/|p| - t/|t|||^2 = 2 - 2 cos
            per = 2.0 - 2.0 * F.cosine_similarity(p, t, dim=-1, eps=self.eps)
        w = tgt.valid.view(-1, *([1] * (per.ndim - 1))).expand_as(per)
        if loss_mask is not None:
            w = w & loss_mask
        loss = masked_mean(per, w)
        metrics = {"pos": loss.detach()}
        if self.smw:
            c = second_moment(t, w)
            neg = masked_mean(torch.einsum("...d,de,...e->...", p, c, p), w) / p.shape[-1]
            loss = loss + self.smw * neg
            metrics["neg"] = neg.detach()
        metrics["count"] = global_count(w)
        if self.collapse_metrics:  # logged as <objective>_target_std / <objective>_pred_rank
            metrics["target_std"] = batch_std(t, w)
            metrics["pred_rank"] = effective_rank(p, w)
        return loss, metrics
