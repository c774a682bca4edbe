"""Our supervised ViT training step against timm's VisionTransformer of the same shape and precision.

Ours: models/supervised_vit_base.json resized (default ViT-S/16: dim 384, 12 layers, 6 heads, 224 px), our
Trainer.train_step (forward under autocast, backward, the update) with our optimizer. Reference: timm's
VisionTransformer with the same patch size, width, depth, heads, class token, stochastic depth and classes,
cross-entropy with the same label smoothing, timm's own create_optimizer_v2("adamw") with the same lr and
weight decay. Both train on one fixed batch of random images (data loading is not timed), in one process,
alternating, medians; the ratio is our img/s over timm's.

    python scripts/benchmark.py vit                                  # ViT-S/16, batch 16, fp32
    python scripts/benchmark.py vit --precision bf16 --device cuda --batch 128
    python scripts/benchmark.py vit --image-size 32 --patch 8 --dim 64 --depth 2 --heads 2 --batch 4 --repeats 2
    python scripts/benchmark.py vit --variant fused:optim.fused=true --variant compiled:train.compile=true

`--variant NAME:key=value[,key=value]` adds our step with recipe overrides (a lever) as another contestant.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

from . import common as bc
from ..recipe.config import load_config
from ..runtime.distributed import DistEnv
from ..training.flops import step_flops
from ..run import build_optim, build_run
from ..training.trainer import Trainer


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=16)
    bc.add_timing_args(p, repeats=10, warmup=2)
    p.add_argument("--no-timm", action="store_true", help="ours and its variants only")
    p.add_argument("--csv", default="results/benchmark_vit.csv")
    return p.parse_args(argv)


def our_sets(a) -> list:
    return [f"model.embedding.image_size={a.image_size}", f"model.embedding.patch_size={a.patch}",
            f"model.embedding.dim={a.dim}", f"model.encoder.dim={a.dim}", f"model.encoder.layers={a.depth}",
            f"model.encoder.heads={a.heads}", f"model.encoder.drop_path={a.drop_path}",
            f"model.objectives.category.target_embedding.num_classes={a.classes}",
            f"model.objectives.category.target_embedding.dim={a.dim}",
            f"train.batch_size={a.batch}", f"train.precision={a.precision}", "train.loggers=[]",
            "train.progress=false", "train.num_workers=0", "train.clip_grad=0.0"]


def batch_of(a, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(a.batch, 3, a.image_size, a.image_size, generator=g)
    labels = torch.randint(0, a.classes, (a.batch,), generator=g)
    return images.to(device), labels.to(device)


def ours(a, device, images, labels, sets=()):
    """(step function, FLOPs per step) of our recipe with `sets` overrides."""
    cfg = load_config(os.path.join(bc.ROOT, "models", "supervised_vit_base.json"),
                      overrides=our_sets(a) + list(sets))
    run = build_run(cfg, with_data=False)
    opt, _ = build_optim(run)
    env = DistEnv(device=device)
    trainer = Trainer(model=run.model, optimizer=opt, schedule=None, dataset=None, collate=None, train=run.train,
                      env=env, config={}, output_dir=os.devnull)
    batch = {"views": {"view1": images}, "label": labels, "index": torch.arange(a.batch, device=device)}
    flops = step_flops(run.model, batch, batch_size=a.batch).per_step
    trainer.model.train()
    return bc.with_runtime(lambda: trainer.train_step([batch]), run.train), flops


def timm_step(a, device, images, labels):
    from timm.models.vision_transformer import VisionTransformer
    from timm.optim import create_optimizer_v2
    torch.manual_seed(0)
    model = VisionTransformer(img_size=a.image_size, patch_size=a.patch, embed_dim=a.dim, depth=a.depth,
                              num_heads=a.heads, num_classes=a.classes, class_token=True, global_pool="token",
                              drop_path_rate=a.drop_path).to(device).train()
    lr = 5e-4 * a.batch / 512
    opt = create_optimizer_v2(model, "adamw", lr=lr, weight_decay=0.05, betas=(0.9, 0.999))

    def step():
        with bc.autocast(device, a.precision):
            loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, type(opt).__name__


def main(argv=None) -> int:
    a = parse(argv if argv is not None else sys.argv[1:])
    device = bc.timing_device(a)
    images, labels = batch_of(a, device)
    contestants, flops, notes = {}, {}, {}
    if not a.no_timm:
        contestants["timm"], opt_name = timm_step(a, device, images, labels)
        notes["timm"] = f"timm VisionTransformer + create_optimizer_v2 adamw ({opt_name})"
    contestants["ours"], flops["ours"] = ours(a, device, images, labels)
    for v in a.variant:
        name, _, sets = v.partition(":")
        contestants[f"ours+{name}"], flops[f"ours+{name}"] = ours(a, device, images, labels, sets.split(","))
        notes[f"ours+{name}"] = sets
    if "timm" in contestants:
        flops["timm"] = flops["ours"]  # the same shapes: the same model FLOPs
    times = bc.alternate(contestants, repeats=a.repeats, warmup=a.warmup, device=device)
    peak = bc.peaks(contestants, device, a.precision)
    cmd = "python scripts/benchmark.py vit " + " ".join(argv if argv is not None else sys.argv[1:])
    bc.report("vit", times, reference="timm" if "timm" in contestants else "ours", per_step=a.batch,
              unit="img/s", device=device, precision=a.precision, csv_path=a.csv, command=cmd.strip(),
              flops=flops, peak=peak, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
