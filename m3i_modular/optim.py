"""Optimizers with no-decay groups, `param_groups` rules (glob on parameter names) and lr scaling."""
import fnmatch
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from .registry import OPTIMIZERS, check_kwargs, config_error, config_path

NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "log_scale", "bias")


@OPTIMIZERS.register("adamw")
def adamw(*, params, lr: float, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.05, fused: Optional[bool] = None):
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)


@OPTIMIZERS.register("sgd")
def sgd(*, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim <= 1 or any(n in name.split(".")[-1] for n in NO_DECAY_NAMES)


def scaled_lr(lr: float, batch_size: int, scaling: Optional[dict]) -> float:
    """MAE / MoCo v3 rule: lr = base_lr * batch / ref_batch (linear) or its square root."""
    if not scaling:
        return lr
    with config_path("optim.lr_scaling", absolute=True):
        check_kwargs(_scaling_keys, scaling, what="lr_scaling")
    ratio = batch_size / scaling.get("ref_batch", 256)
    return lr * (ratio if scaling.get("rule", "linear") == "linear" else ratio ** 0.5)


def _scaling_keys(*, rule: str = "linear", ref_batch: int = 256) -> None:
    if rule not in ("linear", "sqrt"):
        raise config_error(f"lr_scaling rule must be linear or sqrt, got {rule!r}", "rule")


def _group_keys(*, match: str, lr_mult: float = 1.0, weight_decay: Optional[float] = None) -> None:
    """One param_groups rule."""


def build_optimizer(model: nn.Module, cfg: Dict[str, Any], *, batch_size: int) -> torch.optim.Optimizer:
    """Groups: each `param_groups` rule (first match wins) x decay/no-decay. Each group keeps `lr_mult`,
    which the schedule multiplies in. A rule with lr_mult 0 freezes its parameters (MoCo v3's patch
    embedding) -- they are left out of the optimizer so no weight decay touches them either."""
    cfg = dict(cfg)
    kind = cfg.pop("type", "adamw")
    rules = cfg.pop("param_groups", [])
    scaling = cfg.pop("lr_scaling", None)
    base_lr = scaled_lr(cfg.pop("lr"), batch_size, scaling) if "lr" in cfg else None
    if base_lr is None:
        raise config_error("missing key 'lr' for optim", "optim.lr")
    wd = cfg.get("weight_decay", 0.0)
    for i, r in enumerate(rules):
        with config_path(f"optim.param_groups[{i}]", absolute=True):
            check_kwargs(_group_keys, r, what="a param_groups rule")
    groups: Dict[tuple, Dict[str, Any]] = {}
    names = set()
    for name, p in model.named_parameters():
        names.add(name)
        if not p.requires_grad:
            continue
        rule_i = next((i for i, r in enumerate(rules) if fnmatch.fnmatch(name, r["match"])), None)
        rule = rules[rule_i] if rule_i is not None else {}
        mult = float(rule.get("lr_mult", 1.0))
        if mult == 0.0:
            p.requires_grad_(False)
            continue
        nd = _no_decay(name, p)
        key = (rule_i, nd)
        g = groups.setdefault(key, {"params": [], "lr_mult": mult, "names": [],
                                    "weight_decay": 0.0 if nd else float(rule.get("weight_decay", wd))})
        g["params"].append(p)
        g["names"].append(name)
    for i, r in enumerate(rules):
        if not any(fnmatch.fnmatch(n, r["match"]) for n in names):
            raise config_error(f"param_groups rule matches no parameter: '{r['match']}'",
                               f"optim.param_groups[{i}].match")
    param_groups = [dict(g, lr=base_lr * g["lr_mult"], base_lr=base_lr) for g in groups.values()]
    for g in param_groups:
        g.pop("names")
    with config_path("optim", absolute=True):
        fn = OPTIMIZERS.get(kind)
        # every registered optimizer takes weight_decay; the groups carry their own value
        check_kwargs(fn, {**cfg, "lr": base_lr, "params": param_groups}, what=f"optimizer '{kind}'")
        return fn(params=param_groups, lr=base_lr, **cfg)

