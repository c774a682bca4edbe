"""Boltzmann p(z_y | z_hat): softmax cross-entropy over candidates (classes, a vocabulary, the batch)."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import TargetOut
from ..registry import TARGETS
from .reduce import global_count, masked_mean


@TARGETS.register("boltzmann")
class BoltzmannTarget(nn.Module):
    def __init__(self, *, label_smoothing: float = 0.0, temperature: float = 1.0,
                 learn_temperature: bool = False, max_logit_scale: float = 100.0, normalize: bool = False):
        super().__init__()
        self.label_smoothing, self.normalize, self.max_logit_scale = label_smoothing, normalize, max_logit_scale
        scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(scale)
        else:
            self.register_buffer("log_scale", scale, persistent=False)

    def logits(self, pred: torch.Tensor, tgt: TargetOut) -> torch.Tensor:
        cand = tgt.candidates.float()
        p = pred.float()
        if self.normalize:
            p, cand = F.normalize(p, dim=-1), F.normalize(cand, dim=-1)
        scale = self.log_scale.float().exp().clamp(max=self.max_logit_scale)
        logits = p @ cand.T * scale
        if tgt.bias is not None:
            logits = logits + tgt.bias.float()
        return logits

    def forward(self, pred: torch.Tensor, tgt: TargetOut,
                loss_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        index = tgt.index
        per_token = index is not None and index.ndim > 1 and tgt.valid.shape == index.shape
        if per_token:
            # per-token validity (MLM's masked positions): score only those, not the whole sequence
            keep = tgt.valid if loss_mask is None else tgt.valid & loss_mask
            pred, index = pred[keep], index[keep]
            loss_mask = None
            w = torch.ones_like(index, dtype=torch.bool)
        logits = self.logits(pred, tgt)
        per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), index.reshape(-1),
                              label_smoothing=self.label_smoothing, reduction="none").view(index.shape)
        if not per_token:
            w = tgt.valid.view(-1, *([1] * (per.ndim - 1))).expand_as(per)
        if loss_mask is not None:
            w = w & loss_mask
        loss = masked_mean(per, w)
        correct = (logits.argmax(-1) == index).float()
        return loss, {"acc": masked_mean(correct, w).detach(), "count": global_count(w),
                      "logit_scale": self.log_scale.detach().exp()}
