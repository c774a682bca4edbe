"""What the training loop calls: the model with activation checkpointing, compiled blocks, and DDP or FSDP2
around it (`train.parallel`), chosen in the recipe.

- `train.activation_checkpointing`: every module of the model that can recompute its blocks (a `checkpointing`
  attribute, as the transformer and InternImage encoders have) does so in training, non-reentrant; EMA copies
  run in eval mode and are not affected.
- `train.compile`: each block (transformer, predictor, text tower, InternImage, EMA copies) is compiled in place
  with `Module.compile()`: one graph serves all blocks of a shape, the model's Python (selection, objectives,
  batch transforms) stays eager, and state_dict() keys keep their names (no `_orig_mod.`).
- `train.parallel` "ddp": DistributedDataParallel around the whole PretrainModel (target towers included),
  called once per micro-step, `no_sync` under accumulation.
- `train.parallel` "fsdp": FSDP2 (`torch.distributed.fsdp.fully_shard`) on every block, then on the whole model;
  parameters, gradients and optimizer state are sharded over the ranks. Mixed precision follows
  `train.precision`: bf16 parameters for compute, fp32 gradient reduction, fp32 master weights. Checkpoints are
  torch.distributed.checkpoint directories (m3i_modular/sharded.py) that resume on any world size.
"""
import contextlib
from typing import Iterator, List, Optional

import torch
from torch import nn

from ..errors import ConfigError

BLOCK_TYPES = ("TransformerBlock", "DecoderBlock", "InternImageBlock")


def blocks(model: nn.Module) -> List[nn.Module]:
    """The repeated blocks of every tower of the model (online, EMA copies, decoders, text towers)."""
    return [m for m in model.modules() if type(m).__name__ in BLOCK_TYPES]


def set_activation_checkpointing(model: nn.Module, enable: bool = True) -> int:
    """Turn on block recomputation wherever a module offers it; returns how many modules did."""
    n = 0
    for m in model.modules():
        if hasattr(m, "set_grad_checkpointing"):
            m.set_grad_checkpointing(enable)
            n += 1
        elif isinstance(getattr(m, "checkpointing", None), bool):
            m.checkpointing = enable
            n += 1
    return n


def compile_blocks(model: nn.Module, **options) -> int:
    """Compile every block in place (parameter names unchanged); returns how many."""
    found = blocks(model)
    for m in found:
        m.compile(**options)
    return len(found)


def _fsdp_api():
    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError:  # torch 2.4 / 2.5 kept FSDP2 under _composable
        from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard
    return fully_shard, MixedPrecisionPolicy


def shard(model: nn.Module, precision: str, optimizer: Optional[torch.optim.Optimizer] = None) -> nn.Module:
    """FSDP2 on each block, then on the root (which keeps every parameter no block holds). fully_shard puts
    new (DTensor) parameters in place of the old ones: an optimizer built before is pointed at them."""
    fully_shard, MixedPrecisionPolicy = _fsdp_api()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
    before = dict(model.named_parameters())
    # fully_shard takes no 0-dim parameters (learnable temperatures): they stay whole on every rank and their
    # gradients are averaged by a hook, when FSDP reduces the others (the last micro-batch of a step)
    scalars = {p for p in model.parameters() if p.ndim == 0}
    for blk in blocks(model):
        fully_shard(blk, mp_policy=mp, **_ignored(scalars & set(blk.parameters())))
    # BatchNorm is not an autocast op: its weight must match its (fp32) statistics and input
    fp32 = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32)
    for bn in [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]:
        if dtype and any(True for _ in bn.parameters()):
            fully_shard(bn, mp_policy=fp32)
    fully_shard(model, mp_policy=mp, **_ignored(scalars))
    for p in scalars:
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(_average_grad_hook(model))
    if optimizer is not None:
        if optimizer.state:
            raise RuntimeError("shard the model before the optimizer takes a step (its state would be lost)")
        now = dict(model.named_parameters())
        new = {id(p): now[name] for name, p in before.items()}
        for group in optimizer.param_groups:
            group["params"] = [new[id(p)] for p in group["params"]]
    return model


def _ignored(params: set) -> dict:
    return {"ignored_params": params} if params else {}


def _average_grad_hook(model: nn.Module):
    def hook(p: torch.Tensor) -> None:
        if getattr(model, "_m3i_grad_sync", True):
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(torch.distributed.get_world_size())
    return hook


def is_sharded(model: nn.Module) -> bool:
    """True when `model` is an FSDP2 module (its state dict holds DTensor shards)."""
    return type(model).__name__.startswith("FSDP") and hasattr(model, "reshard")


def wrap_model(model: nn.Module, env, train, optimizer: Optional[torch.optim.Optimizer] = None, *,
               precision: str = "fp32") -> nn.Module:
    """`model` (already on env.device) prepared for the loop; returns what the loop calls. With FSDP the
    returned module is `model` itself, sharded in place, and `optimizer` is pointed at its new parameters.
    `precision`: the run's resolved precision (train.precision "auto" resolved for this device)."""
    if train.activation_checkpointing:
        set_activation_checkpointing(model)
    if train.compile:
        compile_blocks(model)
    if train.parallel == "fsdp":
        if precision == "fp16":
            raise ConfigError("train.parallel \"fsdp\" runs bf16 or fp32 (fp16's gradient scaler is not sharded): "
                              "set train.precision to bf16")
        if env.world > 1:
            return shard(model, precision, optimizer)
        return model  # one process: nothing to shard; checkpoints are still written sharded
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        return DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None,
                   find_unused_parameters=train.find_unused_parameters)
    return model


def no_sync(model: nn.Module, *, last: bool):
    """Gradient synchronisation only on the last micro-batch of a step: DDP's no_sync, FSDP2's
    set_requires_gradient_sync; nothing to do for one process."""
    if last:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model: nn.Module) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    model._m3i_grad_sync = False  # the 0-dim parameters' hook (shard) follows FSDP's setting
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
        model._m3i_grad_sync = True
