"""A tiny MAE run shared by the evaluation tests (dim 32, 2 layers, 32 px, a few steps)."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "models", "mae_vit.json")

TINY = ["train.total_steps=3", "train.batch_size=8", "train.num_workers=0", "train.precision=fp32",
        "train.progress=false", "train.save_every=0", "train.log_every=1", "data.sources.0.num_samples=64",
        "model.encoder.layers=2", "model.encoder.dim=32", "model.embedding.dim=32"]


def tiny_args(*extra: str):
    out = []
    for s in TINY + list(extra):
        out += ["--set", s]
    return out
