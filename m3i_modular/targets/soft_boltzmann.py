"""`soft_boltzmann`: softmax cross-entropy against a class distribution (mixup / cutmix labels, timm's
SoftTargetCrossEntropy) with label smoothing: q' = (1 - eps) q + eps / C, loss = -sum_c q'_c log p_c.
Reads TargetOut.value (B, C) when a target embedding gives it (`soft_category`), else one-hot of `index`;
with one-hot targets it equals `boltzmann` with the same label smoothing."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..interfaces import TargetOut
from ..registry import TARGETS
from .boltzmann import BoltzmannTarget
from .reduce import global_count, masked_mean


@TARGETS.register("soft_boltzmann")
class SoftBoltzmannTarget(BoltzmannTarget):
    def forward(self, pred: torch.Tensor, tgt: TargetOut,
                loss_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        logits = self.logits(pred, tgt)
        c = logits.shape[-1]
        q = tgt.value.float() if tgt.value is not None else F.one_hot(tgt.index, c).float()
        if q.shape != logits.shape:
            raise ValueError(f"soft targets {tuple(q.shape)} do not match the logits {tuple(logits.shape)}")
        q = (1.0 - self.label_smoothing) * q + self.label_smoothing / c
        per = -(q * F.log_softmax(logits, dim=-1)).sum(-1)
        w = tgt.valid
        loss = masked_mean(per, w)
        # the dominant label of a mixed sample counts as its class
        correct = (logits.argmax(-1) == q.argmax(-1)).float()
        return loss, {"acc": masked_mean(correct, w).detach(), "count": global_count(w)}
