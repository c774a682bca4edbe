"""Run under torchrun by test_fsdp.py: train a tiny recipe (DDP or FSDP2 per train.parallel), optionally stopping
at a step to dump the full state there, or resuming from a checkpoint directory first; writes the logged
records (records.json) and the full model + optimizer state at the stop / right after the resume (state.pt)."""
import argparse
import json
import os

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
from torch.utils._pytree import tree_map

from m3i_modular.recipe.config import load_config
from m3i_modular.runtime.distributed import cleanup, init_distributed
from m3i_modular.run import build_optim, build_run
from m3i_modular.training.trainer import Trainer, seed_everything


def full_state(trainer) -> dict:
    """Model and optimizer state, gathered whole (a collective under FSDP), keyed by parameter name."""
    msd, osd = get_state_dict(trainer.raw, trainer.opt,
                              options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    # copies: on one CPU process these are the live tensors, which training goes on to change
    return tree_map(lambda t: t.clone() if torch.is_tensor(t) else t, {"model": msd, "optimizer": osd})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("recipe")
    p.add_argument("out")
    p.add_argument("--stop-at", type=int)
    p.add_argument("--resume-from")
    p.add_argument("sets", nargs="*")
    a = p.parse_args()
    cfg = load_config(a.recipe, overrides=a.sets)
    env = init_distributed("cpu")
    os.makedirs(a.out, exist_ok=True)
    run = build_run(cfg, world=env.world)
    opt, sched = build_optim(run)
    seed_everything(run.train.seed + 7919 * env.rank)
    trainer = Trainer(model=run.model, optimizer=opt, schedule=sched, dataset=run.dataset, collate=run.collate,
                      train=run.train, env=env, config={}, output_dir=a.out)
    records = []
    log = trainer.log
    trainer.log = lambda *args: records.append(log(*args)) or records[-1]
    state = None
    if a.resume_from:
        trainer.resume(a.resume_from)
        state = full_state(trainer)
    if a.stop_at:
        trainer.train(stop_at=a.stop_at)
        state = full_state(trainer)
    trainer.train()
    if env.rank == 0:
        with open(os.path.join(a.out, "records.json"), "w") as f:
            json.dump(records, f)
        if state is not None:
            torch.save(state, os.path.join(a.out, "state.pt"))
    cleanup()


if __name__ == "__main__":
    main()
