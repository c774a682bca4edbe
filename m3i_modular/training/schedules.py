"""Learning-rate schedules: a factor of step and `train.total_steps` (the only step budget), with warmup."""
import math

from ..registry import SCHEDULES
from ..recipe.sections import ScheduleConfig


@SCHEDULES.register("cosine")
def cosine(*, step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Linear warmup, then a half cosine from 1 down to min_factor at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


@SCHEDULES.register("linear")
def linear(*, step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Linear warmup, then a straight line from 1 down to min_factor at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return min_factor + (1 - min_factor) * max(0.0, 1.0 - t)


@SCHEDULES.register("constant")
def constant(*, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Linear warmup, then a constant factor 1."""
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


class Schedule:
    """Sets each group's lr = base_lr * lr_mult * factor(step); holds no state but the config."""

    def __init__(self, cfg: ScheduleConfig, total_steps: int):
        self.kind, self.kwargs, self.total = cfg.type, dict(cfg.options), total_steps
        self.fn = SCHEDULES.get(self.kind)

    def factor(self, step: int) -> float:
        return self.fn(step=step, total_steps=self.total, **self.kwargs)

    def apply(self, optimizer, step: int) -> float:
        """Set the lr of every group of `optimizer` for `step`; returns the factor."""
        f = self.factor(step)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * g["lr_mult"] * f
        return f
