"""`mixup_cutmix`: the fine-tuning batch transform of DeiT / MAE / BEiT (timm's Mixup, batch mode).

Per batch, with probability `prob`, either mixup (pixels blended with weight lam ~ Beta(mixup_alpha,
mixup_alpha)) or cutmix (a box of area share 1 - lam ~ Beta(cutmix_alpha, cutmix_alpha) pasted from the
partner; lam is then corrected to the pasted box's true share after clipping at the border); with both on,
cutmix is chosen with probability `switch_prob`. The partner of sample i is sample B - 1 - i (timm's flip).

Writes the mixed images back as batch["views"][view] (a new tensor: the input is not modified) and
batch["label_mix"][label] = {"partner": (B,) long, "lam": (B,) float}: the label of sample i is
lam_i * y_i + (1 - lam_i) * y_partner(i). A target embedding that reads soft labels (`soft_category`) turns
that into class distributions. Randomness comes from the global torch RNG, which the trainer saves and
restores, so a resumed run draws the same mixes. In eval mode the batch passes through untouched.
"""
from typing import Optional, Tuple

import torch
from torch import nn

from ..registry import BATCH_TRANSFORMS, config_error


def cutmix_box(h: int, w: int, lam: float, *, generator: Optional[torch.Generator] = None
               ) -> Tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a box covering about (1 - lam) of an h x w image, centred uniformly at random and
    clipped at the border (timm's rand_bbox)."""
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    return y0, y1, x0, x1


def _beta(alpha: float, generator: Optional[torch.Generator]) -> float:
    # Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a): torch's Beta sampler takes no generator
    a = torch.tensor([alpha, alpha], dtype=torch.float64)
    if generator is None:
        x = torch._standard_gamma(a)
    else:
        x = torch._standard_gamma(a, generator=generator)
    return float(x[0] / x.sum())


@BATCH_TRANSFORMS.register("mixup_cutmix")
class MixupCutmix(nn.Module):
    """mixup_alpha / cutmix_alpha: Beta parameters (0 turns that kind off); prob: share of batches mixed;
    switch_prob: with both on, the share of mixed batches that use cutmix; view: the image view to mix (in
    place in the batch dict); label: the label field whose mixing weights are written."""

    def __init__(self, *, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5, view: str = "view1", label: str = "label"):
        super().__init__()
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise config_error(f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
        if mixup_alpha == 0 and cutmix_alpha == 0:
            raise config_error("mixup_alpha and cutmix_alpha are both 0: leave the transform out instead")
        for name, p in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0.0 <= p <= 1.0:
                raise config_error(f"{name} must be in [0, 1], got {p}", name)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob, self.view, self.label = float(prob), float(switch_prob), view, label

    def draw(self, generator: Optional[torch.Generator] = None) -> Tuple[str, float]:
        """("none" | "mixup" | "cutmix", lam before any box correction)."""
        if float(torch.rand((), generator=generator)) >= self.prob:
            return "none", 1.0
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha == 0 or float(torch.rand((), generator=generator)) < self.switch_prob)
        if use_cutmix:
            return "cutmix", _beta(self.cutmix_alpha, generator)
        return "mixup", _beta(self.mixup_alpha, generator)

    def mix(self, images: torch.Tensor, generator: Optional[torch.Generator] = None
            ) -> Tuple[torch.Tensor, torch.Tensor, float]:
        """(mixed images, partner index, lam): image i holds lam of itself and 1 - lam of its partner."""
        b = images.shape[0]
        partner = torch.arange(b - 1, -1, -1, device=images.device)
        kind, lam = self.draw(generator)
        if kind == "mixup":
            out = images * lam + images[partner] * (1.0 - lam)
        elif kind == "cutmix":
            h, w = images.shape[-2:]
            y0, y1, x0, x1 = cutmix_box(h, w, lam, generator=generator)
            out = images.clone()
            out[..., y0:y1, x0:x1] = images[partner][..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the pasted share, after clipping
        else:
            out = images
        return out, partner, float(lam)

    def forward(self, batch: dict) -> dict:
        if not self.training:
            return batch
        views = batch.get("views", {})
        if self.view not in views:
            raise config_error(f"mixup_cutmix reads view '{self.view}', which the batch does not have "
                               f"(views: {', '.join(views) or 'none'})", "view")
        images = views[self.view]
        mixed, partner, lam = self.mix(images)
        out = dict(batch)
        out["views"] = dict(views, **{self.view: mixed})
        lam_t = torch.full((images.shape[0],), lam, dtype=torch.float32, device=images.device)
        out["label_mix"] = dict(batch.get("label_mix", {}), **{self.label: {"partner": partner, "lam": lam_t}})
        return out
