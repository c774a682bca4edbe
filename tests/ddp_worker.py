"""Run under torchrun by test_distributed.py: train a tiny recipe, then check every rank holds the same
parameters and write this rank's final flat parameters."""
import json
import os
import sys

import torch
import torch.distributed as dist

from m3i_modular.recipe.config import load_config
from m3i_modular.runtime.distributed import cleanup, init_distributed
from m3i_modular.run import build_optim, build_run
from m3i_modular.training.trainer import Trainer, seed_everything


def main(recipe: str, out: str, *sets: str) -> None:
    cfg = load_config(recipe, overrides=list(sets))
    env = init_distributed("cpu")
    os.makedirs(out, exist_ok=True)
    run = build_run(cfg, world=env.world)
    opt, sched = build_optim(run)
    seed_everything(run.train.seed + 7919 * env.rank)
    trainer = Trainer(model=run.model, optimizer=opt, schedule=sched, dataset=run.dataset, collate=run.collate,
                      train=run.train, env=env, config={}, output_dir=out)
    trainer.train()
    flat = torch.cat([p.detach().flatten() for p in run.model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(env.world)] if env.world > 1 else [flat]
    if env.world > 1:
        dist.all_gather(gathered, flat)
    if env.rank == 0:
        with open(os.path.join(out, "ranks.json"), "w") as f:
            json.dump({"world": env.world, "max_rank_diff": max(float((g - flat).abs().max()) for g in gathered)}, f)
        torch.save(flat, os.path.join(out, "params.pt"))
    cleanup()


if __name__ == "__main__":
    main(*sys.argv[1:])
