"""Tiny versions of the contrastive recipes (dim 32, 2 layers, 16 px) for the tests."""
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_overrides(name: str, cfg: dict) -> list:
    """--set values that shrink a CPU recipe while keeping its structure."""
    sets = ["model.embedding.image_size=16", "model.embedding.dim=32", "model.encoder.dim=32",
            "model.encoder.layers=2", "model.encoder.heads=2", "data.sources.0.image_size=16",
            "data.sources.0.num_samples=64", "train.batch_size=8", "train.num_workers=0",
            "train.progress=false", "train.precision=fp32"]
    sets += [f"views.{v}.0.size=16" for v in cfg["views"]]
    if "ema" in cfg.get("shared", {}):
        sets.append("shared.ema.dim=16")
    for obj_name, obj in cfg["model"]["objectives"].items():
        te = obj["target_embedding"]
        if isinstance(te, dict) and "dim" in te:
            sets.append(f"model.objectives.{obj_name}.target_embedding.dim=16")
        if obj["decoder"]["type"] == "projector_predictor":
            sets += [f"model.objectives.{obj_name}.decoder.projector_hidden=24",
                     f"model.objectives.{obj_name}.decoder.predictor_hidden=24"]
        if obj["decoder"].get("hidden"):
            sets.append(f"model.objectives.{obj_name}.decoder.hidden=24")
    return sets


def tiny_config(name: str) -> dict:
    from m3i_modular.recipe.config import load_config
    path = os.path.join(ROOT, "models", f"{name}.json")
    return load_config(path, overrides=tiny_overrides(name, load_config(path)))


def two_view_batch(b: int = 8, size: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"views": {"view1": torch.randn(b, 3, size, size, generator=g),
                      "view2": torch.randn(b, 3, size, size, generator=g)}}
