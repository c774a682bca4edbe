"""Batch transforms that only the lifecycle tests use (loaded with --import or the recipe's "imports"):

- `sleep`: each training step takes at least `seconds` (so a signal lands mid-run);
- `poison`: the input view of the given steps (1-based, from the batch's sample positions; training calls
  only) becomes NaN, on every rank or on `rank` only;
- `pid_file`: writes this process's pid to $M3I_TEST_PIDS/rank<RANK>-<restart>.pid when built (an elastic test
  finds the worker to kill there).
"""
import os
import time
from typing import List

import torch
from torch import nn

from m3i_modular.registry import BATCH_TRANSFORMS


@BATCH_TRANSFORMS.register("sleep")
class Sleep(nn.Module):
    def __init__(self, *, seconds: float = 0.2):
        super().__init__()
        self.seconds = seconds

    def forward(self, batch: dict) -> dict:
        if torch.is_grad_enabled():  # not the build-time probe
            time.sleep(self.seconds)
        return batch


@BATCH_TRANSFORMS.register("poison")
class Poison(nn.Module):
    """The step of a batch is read from its sample positions (global batch `batch_size`), so a resumed run
    poisons the same steps."""

    def __init__(self, *, batch_size: int, steps: List[int] = (), from_step: int = 0, view: str = "view1",
                 rank: int = -1):
        super().__init__()
        self.batch_size, self.steps, self.from_step = batch_size, set(steps), from_step
        self.view, self.rank = view, rank

    def forward(self, batch: dict) -> dict:
        if not torch.is_grad_enabled():  # the build-time probe
            return batch
        step = int(batch["index"].min()) // self.batch_size + 1
        hit = step in self.steps or (self.from_step and step >= self.from_step)
        if hit and self.rank in (-1, int(os.environ.get("RANK", "0"))):
            views = dict(batch["views"])
            views[self.view] = views[self.view] * float("nan")
            batch = dict(batch, views=views)
        return batch


@BATCH_TRANSFORMS.register("pid_file")
class PidFile(nn.Module):
    def __init__(self):
        super().__init__()
        folder = os.environ.get("M3I_TEST_PIDS")
        if folder:
            name = f"rank{os.environ.get('RANK', '0')}-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}.pid"
            with open(os.path.join(folder, name), "w") as f:
                f.write(str(os.getpid()))

    def forward(self, batch: dict) -> dict:
        return batch
