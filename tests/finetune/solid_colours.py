"""A plugin source for the fine-tuning tests: 4 classes of solid-coloured images with mild noise, linearly
separable by their mean colour, so a fine-tuned classifier must reach 100% top-1."""
import numpy as np
import torch

from m3i_modular.registry import DATASETS

COLOURS = ((230, 40, 40), (40, 200, 60), (50, 80, 230), (235, 220, 50))


@DATASETS.register("solid_colours")
class SolidColours:
    classes = ("red", "green", "blue", "yellow")
    num_classes = 4

    def __init__(self, *, num_samples: int = 256, image_size: int = 16, split: str = "train", seed: int = 0):
        self.num_samples, self.image_size, self.seed = num_samples, image_size, seed
        self.split = {"train": 0, "val": 1}[split]

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.split, index])
        label = int(index % 4)  # class-sorted in blocks would be worse; this is interleaved
        img = np.array(COLOURS[label], dtype=np.float64)[:, None, None] + rng.normal(0, 12, (3, self.image_size,
                                                                                         self.image_size))
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return {"key": f"solid/{self.split}/{index}", "image": torch.from_numpy(img), "label": label,
                "caption": None, "seg": None}
