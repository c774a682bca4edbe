"""Optimizers with no-decay groups, `param_groups` rules (glob on parameter names) and lr scaling."""
import fnmatch
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..registry import OPTIMIZERS, config_error, config_path
from ..recipe.sections import LrScaling, OptimConfig, ParamGroupRule

NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "log_scale", "bias")


@OPTIMIZERS.register("adamw")
def adamw(*, params, lr: float, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.05, fused: Optional[bool] = None, foreach: Optional[bool] = None):
    """fused (default when foreach is not asked for): one kernel per parameter group on CPU and CUDA instead of
    a Python loop over the parameters (measured in scripts/benchmark.py vit); false / foreach: torch's others."""
    if fused is None:
        fused = not foreach
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused,
                             foreach=foreach if not fused else None)


@OPTIMIZERS.register("sgd")
def sgd(*, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False):
    """SGD with momentum (torch.optim.SGD)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim <= 1 or any(n in name.split(".")[-1] for n in NO_DECAY_NAMES)


def scaled_lr(lr: float, batch_size: int, scaling: Optional[LrScaling]) -> float:
    """MAE / MoCo v3 rule: lr = base_lr * batch / ref_batch (linear) or its square root."""
    if scaling is None:
        return lr
    ratio = batch_size / scaling.ref_batch
    return lr * (ratio if scaling.rule == "linear" else ratio ** 0.5)


def build_optimizer(model: nn.Module, cfg: OptimConfig, *, batch_size: int) -> torch.optim.Optimizer:
    """Groups: each `param_groups` rule (first match wins) x decay/no-decay. Each group keeps `lr_mult`,
    which the schedule multiplies in. A rule with lr_mult 0 freezes its parameters (MoCo v3's patch
    embedding) -- they are left out of the optimizer so no weight decay touches them either."""
    rules = cfg.param_groups
    base_lr = scaled_lr(cfg.lr, batch_size, cfg.lr_scaling)
    wd = cfg.options.get("weight_decay", 0.0)
    groups: Dict[tuple, Dict[str, Any]] = {}
    names = set()
    for name, p in model.named_parameters():
        names.add(name)
        if not p.requires_grad:
            continue
        rule_i = next((i for i, r in enumerate(rules) if fnmatch.fnmatch(name, r.match)), None)
        rule = rules[rule_i] if rule_i is not None else ParamGroupRule(match="*")
        mult = float(rule.lr_mult)
        if mult == 0.0:
            p.requires_grad_(False)
            continue
        nd = _no_decay(name, p)
        key = (rule_i, nd)
        decay = wd if rule.weight_decay is None else rule.weight_decay
        g = groups.setdefault(key, {"params": [], "lr_mult": mult, "weight_decay": 0.0 if nd else float(decay)})
        g["params"].append(p)
    for i, r in enumerate(rules):
        if not any(fnmatch.fnmatch(n, r.match) for n in names):
            with config_path("optim", absolute=True):
                raise config_error(f"param_groups rule matches no parameter: '{r.match}'",
                                   f"param_groups[{i}].match")
    param_groups = [dict(g, lr=base_lr * g["lr_mult"], base_lr=base_lr) for g in groups.values()]
    # keys checked by OptimConfig; every registered optimizer takes weight_decay, the groups carry their own
    return OPTIMIZERS.get(cfg.type)(params=param_groups, lr=base_lr, **cfg.options)

