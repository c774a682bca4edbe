"""Run by test_ddp_gather_gradients.py under torchrun (2 ranks, gloo) or in-process (1 rank): one
forward/backward of a tiny model with an InfoNCE (image-text) and a second-moment (inter-view) objective on
a fixed global batch; rank 0 writes the averaged parameter gradients as safetensors."""
import os
import sys

import torch

MODEL = {
    "embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
    "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 32},
    "objectives": {
        "inter_view": {"input": "view1", "target_view": "view2", "target_embedding": "@ema",
                       "decoder": {"type": "transformer_predictor", "layers": 1, "dim": 32, "heads": 2},
                       "target": {"type": "gaussian", "second_moment_weight": 0.02}},
        "text": {"input": "view1", "target_view": "text",
                 "target_embedding": {"type": "text_tower", "dim": 16,
                                      "embedding": {"word": {"type": "word", "vocab_size": 20, "dim": 32},
                                                    "position": {"type": "position", "max_length": 6, "dim": 32}},
                                      "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 32}},
                 "decoder": {"type": "pool", "pool": "mean", "head": "mlp", "hidden": 32, "mlp_norm": "layer",
                             "l2_normalize": True},
                 "target": {"type": "infonce"}}},
}
SHARED = {"ema": {"type": "momentum", "of": ["embedding", "encoder"], "momentum": [0.99, 1.0]}}


def global_batch(b: int = 8) -> dict:
    g = torch.Generator().manual_seed(123)
    geom1 = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).repeat(b, 1)
    geom2 = torch.tensor([[0.25, 0.0, 1.0, 0.75, 1.0]]).repeat(b, 1)
    ids = torch.randint(1, 20, (b, 6), generator=g)
    ids[:, 4:] = 0                                              # padding
    present = torch.tensor([True, True, False, True, True, True, True, False])[:b]
    ids[~present] = 0
    return {"views": {"view1": torch.randn(b, 3, 16, 16, generator=g),
                      "view2": torch.randn(b, 3, 16, 16, generator=g)},
            "geometry": {"view1": geom1, "view2": geom2}, "text": ids, "present": {"text": present}}


def grads(rank: int, world: int) -> dict:
    from m3i_modular.recipe.model import build_model
    model = build_model(MODEL, SHARED, seed=0)
    batch = global_batch()
    n = batch["text"].shape[0] // world
    take = lambda t: t[rank * n:(rank + 1) * n]  # noqa: E731
    local = {"views": {k: take(v) for k, v in batch["views"].items()},
             "geometry": {k: take(v) for k, v in batch["geometry"].items()},
             "text": take(batch["text"]), "present": {"text": take(batch["present"]["text"])}}
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    out = net(local)
    out["loss"].backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def main() -> int:
    import torch.distributed as dist
    from safetensors.torch import save_file
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    g = grads(rank, world)
    if rank == 0:
        save_file(g, sys.argv[1])
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main())
