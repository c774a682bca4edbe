"""Model FLOPs per training step, and the FLOP/s and MFU they give.

Counted, not estimated from parameter counts: one forward pass of a small sample batch runs under a dispatch
mode that adds up torch's FLOP formulas (torch.utils.flop_counter: matmuls, convolutions, attention) and
scales them to the global batch. Each operation counts

    1 x its forward FLOPs   when it is off the autograd graph: nothing it reads needs a gradient (an EMA
                            target tower under no_grad, a frozen patch embedding fed images),
    3 x its forward FLOPs   when it is on the graph: the backward pass costs about two forwards (the
                            gradients with respect to the inputs and to the weights),

so an M3I step is not overstated by its EMA tower (run.py used to multiply every forward FLOP by 3).
Activation checkpointing's recomputation is not counted: these are model FLOPs (what MFU is defined on), not
hardware FLOPs. Attention counts the dense score and value products, whatever the mask; CPU's fused
attention kernel (which torch's table leaves out) is counted like the GPU ones.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry, sdpa_flop_count, shape_wrapper

from .checkpoint import rng_state, set_rng_state
from ..runtime.peaks import Peak

_aten = torch.ops.aten


@shape_wrapper
def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


FORMULAS = dict(flop_registry)
FORMULAS[_aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flop


class ForwardFlopCounter(TorchDispatchMode):
    """Forward FLOPs of everything run inside it: `total`, and `trained`, the part on the autograd graph
    (grad mode on and an input that requires grad)."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.trained = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = FORMULAS.get(func._overloadpacket)
        if formula is not None:
            n = int(formula(*args, **kwargs, out_val=out))
            self.total += n
            if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad
                                               for t in tree_leaves((args, kwargs))):
                self.trained += n
        return out


@dataclass
class StepFlops:
    """FLOPs of one optimizer step on the global batch, and the peak the run is measured against."""
    forward: float               # forward FLOPs of the global batch
    trained: float               # of which on the autograd graph (counted 3x)
    peak: Optional[Peak] = None  # of ONE process's device
    world: int = 1

    @property
    def per_step(self) -> float:
        return self.forward + 2.0 * self.trained

    @property
    def forward_only_share(self) -> float:
        """Share of the forward FLOPs that run without gradient (EMA towers, frozen parts)."""
        return 1.0 - self.trained / self.forward if self.forward else 0.0

    def rates(self, steps: int, elapsed: float) -> Dict[str, float]:
        """The metrics.jsonl fields for `steps` steps in `elapsed` seconds (all ranks together)."""
        achieved = self.per_step * steps / max(elapsed, 1e-9)
        out = {"flops_per_step": self.per_step, "flops_per_s": achieved}
        if self.peak is not None and self.peak.flops:
            out["mfu"] = achieved / (self.peak.flops * self.world)
        return out

    def describe(self) -> str:
        lines = [f"# FLOPs per step (global batch): {self.per_step:.3e} = 3 x {self.trained:.3e} trained forward "
                 f"+ 1 x {self.forward - self.trained:.3e} forward-only ({100 * self.forward_only_share:.1f}% of "
                 f"the forward FLOPs run without gradient)"]
        if self.peak is not None:
            peak = f"{self.peak.flops:.3e} FLOP/s" if self.peak.flops else "unknown"
            lines.append(f"# MFU is measured against {self.world} x {peak} ({self.peak.label})")
        return "\n".join(lines)


def count_forward(model: torch.nn.Module, batch: dict) -> ForwardFlopCounter:
    """One training-mode forward of `batch` under the counter. The model's state is left as it was: the RNG
    streams (python, numpy, torch; a run's exact replay depends on them), buffers (BatchNorm statistics) and
    train / eval flags."""
    rng = rng_state()
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    counter = ForwardFlopCounter()
    try:
        model.train()
        with torch.enable_grad(), counter:
            model(batch)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, mode in modes:
            m.training = mode
        set_rng_state(rng)
    return counter


def step_flops(model: torch.nn.Module, sample: dict, *, batch_size: int, peak: Optional[Peak] = None,
               world: int = 1) -> StepFlops:
    """FLOPs per optimizer step of `model` on a global batch of `batch_size`, counted on `sample` (a collated
    batch of a few samples; terms quadratic in the batch, such as InfoNCE logits, are scaled linearly)."""
    n = sample["index"].shape[0] if "index" in sample else len(next(iter(sample.values())))
    c = count_forward(model, sample)
    scale = batch_size / n
    return StepFlops(forward=c.total * scale, trained=c.trained * scale, peak=peak, world=world)


def sample_batch(dataset, collate, n: int = 2, device: Optional[torch.device] = None) -> dict:
    """The first `n` samples of a run's data, collated as the loader does (on `device`)."""
    def move(x):
        if torch.is_tensor(x):
            return x.to(device) if device is not None else x
        return {k: move(v) for k, v in x.items()} if isinstance(x, dict) else x
    return move(collate([dataset[i] for i in range(n)]))
