"""What the embedded synthetic sources share: the split streams, field dropping and their argument checks."""
from typing import Tuple

from ...registry import config_error

SPLITS = {"train": 0, "val": 1, "test": 2}


class SyntheticSource:
    """Base of map-style sources generated on the fly from (seed, split, index)."""

    classes: Tuple[str, ...] = ()

    def _init_common(self, *, num_samples: int, split: str, seed: int, label_fraction: float,
                     caption_fraction: float) -> None:
        if num_samples < 1:
            raise config_error(f"num_samples must be >= 1, got {num_samples}", "num_samples")
        if split not in SPLITS:
            raise config_error(f"unknown split '{split}' (valid: {', '.join(SPLITS)})", "split")
        if seed < 0:
            raise config_error(f"seed must be >= 0, got {seed}", "seed")
        for name, frac in (("label_fraction", label_fraction), ("caption_fraction", caption_fraction)):
            if not 0.0 <= frac <= 1.0:
                raise config_error(f"{name} must be in [0, 1], got {frac}", name)
        self.num_samples, self.split, self.seed = num_samples, split, seed
        self.label_fraction, self.caption_fraction = label_fraction, caption_fraction

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.num_samples
