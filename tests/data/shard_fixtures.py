"""Tiny image inputs and shards for the shard tests: each image is a solid colour that encodes its identity."""
import io
import json
import os

import numpy as np
from PIL import Image

from m3i_modular.preprocess.tar_writer import ShardWriter

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def solid(colour, size=(20, 24)) -> Image.Image:
    return Image.fromarray(np.full((size[0], size[1], 3), colour, np.uint8))


def jpeg_bytes(colour, size=(20, 24)) -> bytes:
    out = io.BytesIO()
    solid(colour, size).save(out, format="JPEG", quality=95)
    return out.getvalue()


def class_folder(root, classes=("cat", "dog", "eel"), per_class=3) -> str:
    """ImageNet-style root/<class>/<i>.{jpg,png}; class c is painted COLOURS[c]."""
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            solid(COLOURS[c]).save(os.path.join(root, name, f"{i}.{'jpg' if i % 2 else 'png'}"))
    return str(root)


def colour_class(image) -> int:
    """Which COLOURS entry a decoded (3, H, W) uint8 image was painted with."""
    mean = image.float().mean((1, 2))
    dist = [float(((mean - torch_tensor(c)) ** 2).sum()) for c in COLOURS]
    return int(np.argmin(dist))


def torch_tensor(c):
    import torch
    return torch.tensor(c, dtype=torch.float32)


def write_shards(directory, name, count, *, colour=0, shard_size=10, bad=()) -> str:
    """`count` samples in directory/name-%03d.tar; indices in `bad` get broken JPEG bytes. Returns the glob."""
    os.makedirs(directory, exist_ok=True)
    good = jpeg_bytes(COLOURS[colour])
    with ShardWriter(os.path.join(directory, f"{name}-%03d.tar"), max_count=shard_size) as w:
        for i in range(count):
            jpg = good
            if i in bad:  # alternately a cut-off JPEG and bytes that are no image at all
                jpg = good[:len(good) // 2] if i % 2 == 0 else b"\xff\xd8 not really a jpeg"
            w.write(f"{name}{i:05d}", {"jpg": jpg, "cls": str(colour).encode(),
                                       "json": json.dumps({"i": i}).encode()})
    return os.path.join(directory, f"{name}-*.tar")


def tiny_recipe(shards: str, **train) -> dict:
    """An MAE-style recipe at the smallest useful size, reading `shards`."""
    return {
        "model": {
            "embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 16, "pos": "sincos"},
            "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 16, "norm": "pre"},
            "objectives": {"mae": {
                "input": "view1", "target_view": "view1", "loss_on": "masked", "weight": 1.0,
                "target_embedding": {"type": "pixels", "patch_size": 4, "normalize": True},
                "decoder": {"type": "transformer_predictor", "layers": 1, "dim": 16, "heads": 2,
                            "relative_scale": False},
                "target": {"type": "gaussian", "loss": "mse"}}},
        },
        "data": {"sources": [{"type": "webdataset_shards", "weight": 1.0, "shards": shards}]},
        "views": {"view1": [{"type": "random_resized_crop", "size": 16, "scale": [0.5, 1.0]},
                            {"type": "normalize"}, {"type": "random_mask", "patch_size": 4, "ratio": 0.5}]},
        "optim": {"type": "adamw", "lr": 1.0e-3},
        "train": {"total_steps": 4, "batch_size": 4, "precision": "fp32", "seed": 0, "log_every": 1,
                  "save_every": 2, "keep_last": 3, "num_workers": 2, "progress": False, "device": "cpu",
                  **train},
    }
