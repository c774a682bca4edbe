"""M3I's training time per FLOP against MAE's on the same tower: does M3I's many-objective step (mixing,
selection, an EMA tower, two predictors, category and text heads, the EMA update) keep the hardware as busy
as MAE's plain one? Both recipes at the same size (`--size base`: ViT-B/16 at 224 px, m3i_vit_base.json vs
mae_vit_base.json; `--size cpu`: the CPU recipes), the same batch, precision and device; each step is our
Trainer.train_step plus the model's after_optimizer_step (where the EMA tower updates) on one fixed batch made
by the recipe's own data pipeline (loading is not timed). FLOPs per step are counted (m3i_modular/training/flops.py:
3x the forward FLOPs with gradient, 1x those without). The ratio is MAE's FLOP/s over M3I's, i.e. M3I's time
per FLOP relative to MAE's (goal <= 1.15); samples/s and MFU are printed for both.

    python scripts/benchmark.py m3i --size cpu --batch 16                        # quick, CPU
    python scripts/benchmark.py m3i --device cuda --precision bf16 --batch 128   # ViT-B/16 on a GPU
    python scripts/benchmark.py m3i --size cpu --set model.encoder.layers=2 --variant compiled:train.compile=true
"""
from __future__ import annotations

import argparse
import os
import sys

from . import common as bc
from ..recipe.config import load_config
from ..runtime.distributed import DistEnv
from ..training.flops import step_flops
from ..run import build_optim, build_run
from ..training.trainer import Trainer, move

RECIPES = {"base": ("m3i_vit_base.json", "mae_vit_base.json"), "cpu": ("m3i_vit.json", "mae_vit.json")}
# the base recipes expect real data and a 32k tokenizer: the benchmark feeds synthetic shapes and the small
# caption tokenizer (the token ids stay below the text tower's vocabulary)
BASE_DATA = [f"tokenizer.model={os.path.join(bc.ROOT, 'models', 'assets', 'shapes_sp.model')}"]


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=list(RECIPES), default="base")
    p.add_argument("--batch", type=int, default=32)
    bc.add_timing_args(p, repeats=10, warmup=2,
                       variant_help="also time both recipes with these overrides (a lever)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override both recipes (e.g. model.encoder.layers=2)")
    p.add_argument("--csv", default="results/benchmark_m3i.csv")
    return p.parse_args(argv)


def contestant(recipe: str, a, device, sets=()):
    """(step function, FLOPs per step) of a recipe's training step on one fixed batch."""
    common = [f"train.batch_size={a.batch}", f"train.precision={a.precision}", "train.loggers=[]",
              "train.progress=false", "train.num_workers=0"]
    extra = BASE_DATA if a.size == "base" and recipe.startswith("m3i") else []
    cfg = load_config(os.path.join(bc.ROOT, "models", recipe), overrides=common + extra + a.sets + list(sets))
    run = build_run(cfg)
    opt, _ = build_optim(run)
    trainer = Trainer(model=run.model, optimizer=opt, schedule=None, dataset=None, collate=None, train=run.train,
                      env=DistEnv(device=device), config={}, output_dir=os.devnull)
    batch = move(run.collate([run.dataset[i] for i in range(a.batch)]), device)
    flops = step_flops(run.model, batch, batch_size=a.batch).per_step
    trainer.model.train()
    total = run.train.total_steps

    def step():
        trainer.train_step([batch])
        trainer.step += 1
        trainer.raw.after_optimizer_step(trainer.step, total)
    return bc.with_runtime(step, run.train), flops


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(argv)
    device = bc.timing_device(a)
    m3i, mae = RECIPES[a.size]
    contestants, flops = {}, {}
    for label, sets in [("", [])] + [(f"+{n}", s.split(",")) for n, _, s in (v.partition(":") for v in a.variant)]:
        contestants[f"mae{label}"], flops[f"mae{label}"] = contestant(mae, a, device, sets)
        contestants[f"m3i{label}"], flops[f"m3i{label}"] = contestant(m3i, a, device, sets)
    times = bc.alternate(contestants, repeats=a.repeats, warmup=a.warmup, device=device)
    peak = bc.peaks(contestants, device, a.precision)
    cmd = "python scripts/benchmark.py m3i " + " ".join(argv)
    bc.report("m3i", times, reference="mae", per_step={k: v / 1e9 for k, v in flops.items()}, unit="GFLOP/s",
              device=device, precision=a.precision,
              csv_path=a.csv, command=cmd, flops=flops, peak=peak)
    for name, ts in times.items():
        print(f"  {name:<28s} {a.batch / bc.median(ts):10.2f} samples/s   {flops[name]:.3e} FLOPs/step")
    m3i_ratio = bc.median([(t / flops["m3i"]) / (r / flops["mae"]) for r, t in zip(times["mae"], times["m3i"])])
    print(f"M3I time per FLOP / MAE time per FLOP: {m3i_ratio:.3f} (goal <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
