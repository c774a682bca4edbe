"""InfoNCE (CLIP, SimCLR, MoCo v3, M3I's image-text term): a Boltzmann distribution over the batch's
candidates, gathered across ranks with gradient.

Each pred row r belongs to sample index[r]; its right candidate is that sample's (caption, other view).
negatives "batch": the other samples' candidates; "batch_both_views": also the other samples' preds
(SimCLR's NT-Xent). Symmetric adds the candidate -> pred direction: row r's candidate against every pred row,
where other rows of the same sample (M3I's A and B roles of one image) are left out rather than counted as
negatives. Each rank computes its own rows against all candidates; the loss is normalised by the valid count
summed over ranks (reduce.masked_mean), so DDP's gradient average equals one process on the global batch."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..interfaces import TargetOut
from ..registry import TARGETS, config_error
from .gather import gather_rows, rank, world
from .reduce import global_count, masked_mean

_OFF = -1e9  # a finite "minus infinity": masked rows stay finite in the backward pass


@TARGETS.register("infonce")
class InfoNCETarget(nn.Module):
    def __init__(self, *, temperature: float = 0.07, learn_temperature: bool = True,
                 max_logit_scale: float = 100.0, negatives: str = "batch", symmetric: bool = True,
                 normalize: bool = True):
        super().__init__()
        if negatives not in ("batch", "batch_both_views"):
            raise config_error(f"negatives must be batch or batch_both_views, got '{negatives}'", "negatives")
        if temperature <= 0:
            raise config_error(f"temperature must be > 0, got {temperature}", "temperature")
        self.negatives, self.symmetric, self.normalize = negatives, symmetric, normalize
        self.max_log_scale = math.log(max_logit_scale)
        scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(scale)
        else:
            self.register_buffer("log_scale", scale, persistent=False)

    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.float().clamp(max=self.max_log_scale).exp()

    def forward(self, pred: torch.Tensor, tgt: TargetOut,
                loss_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if tgt.candidates is None or tgt.index is None:
            raise config_error("infonce needs a target embedding that returns batch candidates "
                               "(text_tower, momentum / online with pool)")
        p, c = pred.float(), tgt.candidates.float()
        if p.ndim != 2:
            raise config_error(f"infonce needs one vector per row, got predictions of shape {tuple(p.shape)}: "
                               f"use a pooling decoder")
        if self.normalize:
            p, c = F.normalize(p, dim=-1), F.normalize(c, dim=-1)
        n, P = c.shape[0], p.shape[0]
        cvalid = tgt.candidate_valid
        cvalid = torch.ones(n, dtype=torch.bool, device=c.device) if cvalid is None else cvalid.to(c.device)
        r, w = rank(), world()
        ids = tgt.index + r * n                                     # global sample id of each pred row
        c_all, p_all = gather_rows(c), gather_rows(p)
        cvalid_all, ids_all = gather_rows(cvalid, grad=False), gather_rows(ids, grad=False)
        self_col = r * P + torch.arange(P, device=p.device)         # each row's own column among p_all
        s = self.logit_scale()
        same = ids_all[None, :] == ids[:, None]                     # (P, P*w): pred columns of my sample

        # pred -> candidate
        logits = (s * p @ c_all.T).masked_fill(~cvalid_all[None, :], _OFF)
        if self.negatives == "batch_both_views":
            logits = torch.cat([logits, (s * p @ p_all.T).masked_fill(same, _OFF)], 1)
        per = F.cross_entropy(logits, ids, reduction="none")
        acc = (logits.argmax(-1) == ids).float()
        if self.symmetric:  # candidate -> pred: my sample's candidate against every pred row
            mine = c.index_select(0, tgt.index)
            cols = torch.arange(P * w, device=p.device)
            drop = same & (cols[None, :] != self_col[:, None])      # my sample's other rows are no negatives
            lt = (s * mine @ p_all.T).masked_fill(drop, _OFF)
            if self.negatives == "batch_both_views":
                cc = s * mine @ c_all.T
                cc = cc.masked_fill(~cvalid_all[None, :] | (torch.arange(n * w, device=p.device)[None, :]
                                                           == ids[:, None]), _OFF)
                lt = torch.cat([lt, cc], 1)
            per = 0.5 * (per + F.cross_entropy(lt, self_col, reduction="none"))
        weight = tgt.valid.to(p.device) & cvalid.index_select(0, tgt.index)
        if loss_mask is not None:
            weight = weight & loss_mask
        per = torch.where(weight, per, torch.zeros_like(per))
        loss = masked_mean(per, weight)
        return loss, {"acc": masked_mean(acc, weight).detach(), "count": global_count(weight),
                      "logit_scale": s.detach()}
