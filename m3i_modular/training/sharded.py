"""Sharded checkpoints (torch.distributed.checkpoint) for `train.parallel` "fsdp".

A checkpoint directory holds, instead of model.pt + optimizer.pt:

    state/        DCP files: every rank writes its own shards of {"model", "optimizer"}, keyed by parameter
                  name (the optimizer state too), with a .metadata index of which rank holds which slice;
    trainer.pt    step, data position, RNG states of every rank, scaler (rank 0, as for DDP checkpoints);
    config.json, meta.json (with "sharded": true), tokenizer files.

Written under a temporary name and renamed, `latest` and `keep_last` as checkpoint.py does. Loading reshards:
a run saved on R ranks resumes on any number (1 included), since DCP reads each slice a rank now needs from
whichever files hold it. checkpoint.load_tensors(dir, "model") gathers the model of a sharded checkpoint into one
ordinary state dict, so inference, export and --init-from read it like any other.
"""
import json
import os
import shutil
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn

from .checkpoint import LATEST, SHARDED, _atomic_text, prune, step_dir

STATE = os.path.dirname(SHARDED)


def is_sharded_checkpoint(ckpt_dir: str) -> bool:
    return os.path.isfile(os.path.join(ckpt_dir, SHARDED))


def _dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _barrier() -> None:
    if _dist():
        dist.barrier()


def _model_optim_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> Dict[str, dict]:
    from torch.distributed.checkpoint.state_dict import get_state_dict
    msd, osd = get_state_dict(model, optimizer)
    return {"model": msd, "optimizer": osd}


def save_checkpoint(root: str, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict, *, config: dict, meta: dict, is_main: bool,
                    extra_files: Optional[Dict[str, str]] = None, keep_last: int = 0) -> str:
    """Every rank calls it (a collective). Returns the checkpoint directory."""
    final = os.path.join(root, step_dir(step))
    tmp = os.path.join(root, f".{step_dir(step)}.tmp-sharded")
    if is_main:
        os.makedirs(root, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written save of an earlier, killed attempt
        os.makedirs(tmp)
    _barrier()
    try:
        dcp.save(_model_optim_state(model, optimizer), checkpoint_id=os.path.join(tmp, STATE))
        _barrier()
        if is_main:
            torch.save(trainer_state, os.path.join(tmp, "trainer.pt"))
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(config, f, indent=2)
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(dict(meta, step=step, sharded=True), f, indent=2)
            for name, src in (extra_files or {}).items():
                os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
                shutil.copyfile(src, os.path.join(tmp, name))
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
            _atomic_text(os.path.join(root, LATEST), step_dir(step) + "\n")
            if keep_last > 0:
                prune(root, keep_last)
    except BaseException:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _barrier()
    return final


def load_model_optimizer(ckpt_dir: str, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load a sharded checkpoint's model and optimizer into `model` (sharded with FSDP2 or not, on any world
    size) and `optimizer`. Every rank calls it."""
    from torch.distributed.checkpoint.state_dict import set_state_dict
    state = _model_optim_state(model, optimizer)
    dcp.load(state, checkpoint_id=os.path.join(ckpt_dir, STATE))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
