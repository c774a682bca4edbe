"""Frozen features for evaluation: the mean of the last layer's tokens (prefix tokens such as CLS left
out), computed in batches, without gradients, in eval mode (the model's mode is restored afterwards)."""
import contextlib
import inspect
from typing import Any, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.views.pipeline import apply_view
from ..errors import ConfigError, DataError
from ..registry import DATASETS, build, config_path


def mean_pooled(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    tokens = model.forward_features(images)
    prefix = getattr(model.embedding, "num_prefix", 0)
    return tokens[:, prefix:].float().mean(1)


def build_split_source(cfg: dict, split: str, *, num_samples: Optional[int] = None, source: int = 0) -> Any:
    """The recipe's data source `source` with `split` (and num_samples where the source takes it), with every
    label kept."""
    sources = (cfg.get("data") or {}).get("sources") or []
    path = f"data.sources[{source}]"
    if not 0 <= source < len(sources) or not isinstance(sources[source], dict):
        raise ConfigError(f"the recipe has no data source {source} to evaluate on ({len(sources)} sources)",
                          path="data.sources")
    scfg = {k: v for k, v in sources[source].items() if k != "weight"}
    with config_path(path, absolute=True):
        params = inspect.signature(DATASETS.get(scfg.get("type")).__init__).parameters
        if "split" not in params:
            raise ConfigError(f"source '{scfg['type']}' takes no 'split': evaluation needs a train and a "
                              f"held-out split", path=path)
        scfg["split"] = split
        if num_samples is not None and "num_samples" in params:
            scfg["num_samples"] = max(int(num_samples), 1)
        # labels withheld from pre-training are still the probe's labels: every recipe is probed on the same
        # samples whatever its label/caption fraction
        for frac in ("label_fraction", "caption_fraction"):
            if frac in params:
                scfg[frac] = 1.0
        return build(DATASETS, scfg)


class EvalSplit(Dataset):
    """(image through the eval view, label) of a source's first samples; -1 where a sample has no label."""

    def __init__(self, source: Any, steps: Sequence[Any], limit: Optional[int] = None):
        self.source, self.steps = source, list(steps)
        self.n = len(source) if limit is None else min(int(limit), len(source))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        raw = self.source[i]
        if raw.get("image") is None:
            raise DataError(f"sample '{raw.get('key', i)}' has no image to evaluate")
        g = torch.Generator().manual_seed(0)
        label = raw.get("label")
        return apply_view(self.steps, raw["image"], g).image, -1 if label is None else int(label)


def load_split(source: Any, steps: Sequence[Any], *, limit: Optional[int] = None, batch_size: int = 256,
               num_workers: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """All labelled images of the split (N, 3, H, W) and their labels (N,)."""
    loader = DataLoader(EvalSplit(source, steps, limit), batch_size=batch_size, num_workers=num_workers)
    images, labels = [], []
    for x, y in loader:
        keep = y >= 0  # unlabelled samples cannot be scored
        images.append(x[keep])
        labels.append(y[keep])
    if not images or sum(len(y) for y in labels) == 0:
        raise DataError("the evaluation split has no labelled samples")
    return torch.cat(images), torch.cat(labels)


@torch.no_grad()
def extract_features(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 256,
                     device: Optional[torch.device] = None, autocast_dtype: Optional[torch.dtype] = None
                     ) -> torch.Tensor:
    """Mean-pooled last-layer features (N, D) in float32 on the CPU."""
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device, non_blocking=True)
            ctx = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                   else contextlib.nullcontext())
            with ctx:
                out.append(mean_pooled(model, x).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)
