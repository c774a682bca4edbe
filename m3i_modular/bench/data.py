"""Is the data pipeline fast enough for a recipe? Three numbers on the same recipe and machine:

1. loader throughput: samples/s of the DataLoader (views, masks, tokenization, collate) with N workers;
2. step demand: samples/s the training step alone consumes (forward + backward + optimizer on one batch);
3. the data-time share of a short real training run (time the trainer waits for batches / wall time).

    python scripts/benchmark.py data --config models/mae_vit.json --workers 0 1 2 4 --batches 20 --steps 10

Prints a table and a final JSON line. The loader is fast enough when its samples/s with the recipe's
`train.num_workers` exceeds the step demand; otherwise add workers or cheapen the views.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from ..recipe.config import load_config
from ..data.sampling import PositionSampler
from ..runtime.distributed import init_distributed
from ..errors import ConfigError, DataError
from ..run import build_optim, build_run
from ..training.trainer import Trainer, TrainConfig, move


def loader_rate(run, workers: int, batches: int, batch_size: int) -> float:
    """Samples/s after the first batch (worker start-up is not what training waits on in steady state)."""
    loader = DataLoader(run.dataset, batch_size=batch_size, sampler=PositionSampler(), num_workers=workers,
                        collate_fn=run.collate, prefetch_factor=4 if workers else None,
                        persistent_workers=False)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * batch_size / (time.perf_counter() - t0)
    del it
    return rate


def step_demand(run, steps: int, device: torch.device) -> float:
    """Samples/s of the training step on one fixed batch (no data loading at all)."""
    model = run.model.to(device).train()
    opt, _ = build_optim(run)
    batch = move(run.collate([run.dataset[i] for i in range(run.train.batch_size)]), device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(run.train.precision)

    def one():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()  # warm-up: allocator, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * run.train.batch_size / (time.perf_counter() - t0)


def data_time_share(cfg: dict, steps: int) -> float:
    """Run the real trainer for `steps` steps into a scratch directory; its logged data_time_share."""
    train = dict(cfg["train"], total_steps=steps, log_every=steps, save_every=0, progress=False,
                 loggers=["jsonl"])
    cfg = dict(cfg, train=train)
    env = init_distributed(train.get("device", "auto"))
    run = build_run(cfg, world=env.world)
    opt, schedule = build_optim(run)
    with tempfile.TemporaryDirectory(prefix="benchmark_data.") as out:
        trainer = Trainer(model=run.model, optimizer=opt, schedule=schedule, dataset=run.dataset,
                          collate=run.collate, train=run.train, env=env, config=cfg, output_dir=out)
        last = trainer.train()
    return float(last["data_time_share"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument("--batches", type=int, default=20, help="batches timed per worker count")
    p.add_argument("--steps", type=int, default=10, help="training steps timed (demand and the real run)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, overrides=args.overrides, imports=args.imports)
        tc = TrainConfig.from_config(cfg["train"])
        dev = "cuda" if tc.device == "auto" and torch.cuda.is_available() else \
            ("cpu" if tc.device == "auto" else tc.device)
        run = build_run(cfg)
        rates = {w: loader_rate(run, w, args.batches, tc.batch_size) for w in args.workers}
        demand = step_demand(run, args.steps, torch.device(dev))
        share = data_time_share(cfg, args.steps)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"recipe {args.config}: batch {tc.batch_size}, device {dev}")
    print(f"{'workers':>8} {'loader samples/s':>18} {'x step demand':>14}")
    for w, r in rates.items():
        print(f"{w:>8} {r:>18.1f} {r / demand:>14.2f}")
    print(f"step demand: {demand:.1f} samples/s; data-time share of a {args.steps}-step run with "
          f"{tc.num_workers} worker(s): {share:.3f}")
    print(json.dumps({"loader_samples_per_s": {str(w): round(r, 2) for w, r in rates.items()},
                      "step_samples_per_s": round(demand, 2), "data_time_share": round(share, 4),
                      "num_workers": tc.num_workers, "batch_size": tc.batch_size, "device": dev}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
