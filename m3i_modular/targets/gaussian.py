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
                 beta: float = 1.0, eps: float = 1e-6, mean_baseline: bool = False,
                 collapse_metrics: bool = True):
        super().__init__()
        self.collapse_metrics = collapse_metrics
        if loss not in ("mse", "smooth_l1", "cosine"):
            raise ValueError(f"loss must be mse, smooth_l1 or cosine, got {loss!r}")
        if normalize not in ("none", "layernorm", "l2"):
            raise ValueError(f"normalize must be none, layernorm or l2, got {normalize!r}")
        self.loss, self.normalize, self.smw, self.beta, self.eps = loss, normalize, second_moment_weight, beta, eps
        self.mean_baseline = mean_baseline

    def _per_token(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.loss == "mse":
            return (p - t).pow(2).mean(-1)
        if self.loss == "smooth_l1":
            return F.smooth_l1_loss(p, t, reduction="none", beta=self.beta).mean(-1)
        # BYOL: ||p/|p| - t/|t|||^2 = 2 - 2 cos
        return 2.0 - 2.0 * F.cosine_similarity(p, t, dim=-1, eps=self.eps)

    def _total(self, p: torch.Tensor, t: torch.Tensor, w: torch.Tensor, c: Optional[torch.Tensor]):
        pos = masked_mean(self._per_token(p, t), w)
        if c is None:
            return pos, pos, None
        neg = masked_mean(torch.einsum("...d,de,...e->...", p, c, p), w) / p.shape[-1]
        return pos + self.smw * neg, pos, neg

    def forward(self, pred: torch.Tensor, tgt: TargetOut,
                loss_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        t = tgt.value.detach().float()
        p = pred.float()
        if self.normalize == "layernorm":
            t = F.layer_norm(t, t.shape[-1:], eps=self.eps)
        elif self.normalize == "l2":
            t = F.normalize(t, dim=-1)
        w = tgt.valid.view(-1, *([1] * (t.ndim - 2))).expand(t.shape[:-1])
        # C covers every valid target token, the loss only those loss_mask keeps
        c = second_moment(t, w) if self.smw else None
        if loss_mask is not None:
            w = w & loss_mask
        loss, pos, neg = self._total(p, t, w, c)
        metrics = {"pos": pos.detach()}
        if neg is not None:
            metrics["neg"] = neg.detach()
        if self.mean_baseline:  # the loss of predicting the batch-mean target everywhere: a floor to beat
            with torch.no_grad():
                mean = _masked_avg(t, w)
                metrics["mean_baseline"] = self._total(mean.expand_as(t), t, w, c)[0]
        metrics["count"] = global_count(w)
        if self.collapse_metrics:  # logged as <objective>_target_std / <objective>_pred_rank
            metrics["target_std"] = batch_std(t, w)
            metrics["pred_rank"] = effective_rank(p, w)
        return loss, metrics


def _masked_avg(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-channel mean of the weighted target tokens over all ranks."""
    flat, wf = t.reshape(-1, t.shape[-1]), w.reshape(-1, 1).float()
    stats = torch.cat([(flat * wf).sum(0), wf.sum(0)])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(stats)
    return stats[:-1] / stats[-1].clamp(min=1.0)
