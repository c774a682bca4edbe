"""Target embeddings with no tower: per-patch pixels (MAE) and class embeddings (supervised)."""
import torch
from torch import nn

from ..interfaces import TargetOut
from ..registry import TARGET_EMBEDDINGS


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), row-major patches, each patch flattened as (p, p, C)."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


@TARGET_EMBEDDINGS.register("pixels")
class PixelTargets(nn.Module):
    def __init__(self, *, patch_size: int, in_chans: int = 3, normalize: bool = True, eps: float = 1e-6):
        super().__init__()
        self.patch_size, self.normalize, self.eps = patch_size, normalize, eps
        self.dim = patch_size * patch_size * in_chans

    def forward(self, batch: dict, *, view: str) -> TargetOut:
        images = batch["views"][view]
        t = patchify(images.float(), self.patch_size)
        if self.normalize:  # MAE's per-patch normalisation
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=True) + self.eps).sqrt()
        g = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        return TargetOut(valid=torch.ones(t.shape[0], dtype=torch.bool, device=t.device), value=t, grid=g)


@TARGET_EMBEDDINGS.register("category")
class CategoryEmbedding(nn.Module):
    """Class embeddings as candidates (a linear classifier's weight and bias); zero-initialised, so the
    first step's cross-entropy is ln(num_classes)."""

    def __init__(self, *, num_classes: int, dim: int = 0, bias: bool = True, init: str = "zeros"):
        super().__init__()
        self.num_classes, self.dim = num_classes, dim or num_classes
        self.weight = nn.Parameter(torch.zeros(num_classes, self.dim))
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None
        if init == "normal":
            nn.init.normal_(self.weight, std=0.01)
        elif init != "zeros":
            raise ValueError(f"init must be zeros or normal, got {init!r}")

    def forward(self, batch: dict, *, view: str = "label") -> TargetOut:
        labels = batch[view]
        present = batch.get("present", {}).get(view)
        valid = labels >= 0 if present is None else present & (labels >= 0)
        message = f"a label is >= num_classes ({self.num_classes}): set num_classes to the data's"
        in_range = ~(valid & (labels >= self.num_classes)).any()
        if labels.device.type == "cpu":
            if not bool(in_range):
                raise ValueError(message)
        else:  # checked on the device, without waiting for it (a failure stops the run at the next sync)
            torch._assert_async(in_range, message)
        return TargetOut(valid=valid, candidates=self.weight, bias=self.bias, index=labels.clamp(min=0))


