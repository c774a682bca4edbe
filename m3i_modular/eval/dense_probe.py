"""Dense linear probe: per-patch classification of FROZEN grid tokens, scored by mIoU against pixel masks
(our stand-in for the paper's detection / segmentation transfer). One fixed protocol:

1. every pixel belongs to the patch whose cell of the token grid covers it; a patch's target is the share of
   its pixels in each class (ignore-label pixels left out), so training the per-patch linear classifier with
   cross-entropy against it is the per-pixel cross-entropy of the patch's prediction assigned to its pixels;
2. features standardised with the training tokens' statistics; softmax regression, full batch, L-BFGS, L2
   strength chosen by mIoU on a seeded carve-out of the training IMAGES (the most regularised value wins ties),
   then refit on all of them;
3. each patch's logits go back to its pixels (`nearest`, the default: the patch's class for all its pixels;
   `bilinear`: logits interpolated between patch centres) and the confusion matrix over all held-out pixels
   gives IoU per class = TP / (TP + FP + FN); mIoU is the mean over the classes present in the ground truth or
   the predictions, background (class 0) included; `fg_miou` leaves class 0 out; `objectness_iou` is the IoU of
   "any foreground class" against background (localisation without recognition).

Masks hold a class per pixel (synthetic_shapes: 0 background, label + 1 for the shape); IGNORE (255) pixels
count nowhere.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from .linear_probe import fit_logistic, standardise

IGNORE = 255
L2_GRID = (1e-2, 1e-4, 1e-6)


def _cells(size: int, n: int, device=None) -> torch.Tensor:
    """For each of `size` pixels along an axis, the index of the grid cell (of n) that covers its centre."""
    return (((torch.arange(size, device=device) + 0.5) * n / size).floor().long()).clamp(max=n - 1)


def patch_targets(seg: torch.Tensor, grid, num_classes: int) -> torch.Tensor:
    """(N, H, W) masks -> (N, h, w, K): the share of each patch's valid pixels in each class (all zeros for a
    patch with no valid pixel)."""
    n, hh, ww = seg.shape
    h, w = grid
    seg = seg.long()
    valid = (seg >= 0) & (seg < num_classes) & (seg != IGNORE)
    cell = _cells(hh, h)[:, None] * w + _cells(ww, w)[None, :]                  # (H, W) patch of each pixel
    index = (cell[None] * num_classes + seg.clamp(0, num_classes - 1)).reshape(n, -1)
    counts = torch.zeros(n, h * w * num_classes).scatter_add_(1, index, valid.reshape(n, -1).float())
    counts = counts.view(n, h, w, num_classes)
    return counts / counts.sum(-1, keepdim=True).clamp(min=1.0)


def logits_to_pixels(logits: torch.Tensor, size, mode: str = "nearest") -> torch.Tensor:
    """(N, h, w, K) patch logits -> (N, H, W) predicted class per pixel."""
    hh, ww = size
    if mode == "nearest":
        h, w = logits.shape[1:3]
        return logits.argmax(-1)[:, _cells(hh, h)[:, None], _cells(ww, w)[None, :]]
    if mode == "bilinear":
        up = F.interpolate(logits.permute(0, 3, 1, 2), size=(hh, ww), mode="bilinear", align_corners=False)
        return up.argmax(1)
    raise ValueError(f"upsample must be 'nearest' or 'bilinear', got '{mode}'")


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) pixel counts, rows = ground truth, columns = prediction; ignore-label pixels left out."""
    t, p = target.reshape(-1).long(), pred.reshape(-1).long()
    keep = (t >= 0) & (t < num_classes) & (t != IGNORE)
    return torch.bincount(t[keep] * num_classes + p[keep], minlength=num_classes ** 2).view(num_classes,
                                                                                           num_classes)


def iou_scores(conf: torch.Tensor) -> Dict[str, float]:
    """mIoU (classes present in ground truth or prediction), foreground mIoU (class 0 left out), the
    class-agnostic IoU of foreground vs background (`objectness_iou`: where the objects are, whatever their
    class) and pixel accuracy of a confusion matrix."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    seen = union > 0
    iou = torch.where(seen, tp / union.clamp(min=1), torch.zeros_like(tp))
    fg = seen.clone()
    fg[0] = False
    total = conf.sum()
    obj_tp, obj_fp, obj_fn = conf[1:, 1:].sum(), conf[0, 1:].sum(), conf[1:, 0].sum()
    obj_union = obj_tp + obj_fp + obj_fn
    return {"miou": float(iou[seen].mean()) if seen.any() else 0.0,
            "fg_miou": float(iou[fg].mean()) if fg.any() else 0.0,
            "objectness_iou": float(obj_tp / obj_union) if obj_union > 0 else 0.0,
            "pixel_acc": float(tp.sum() / total) if total > 0 else 0.0}


def _logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return x @ w + b


def dense_probe(train_tokens: torch.Tensor, train_seg: torch.Tensor, test_tokens: torch.Tensor,
                test_seg: torch.Tensor, *, num_classes: Optional[int] = None, l2_grid: Sequence[float] = L2_GRID,
                val_fraction: float = 0.2, max_iter: int = 200, seed: int = 0,
                upsample: str = "nearest") -> Dict[str, object]:
    """The protocol above. Tokens (N, h, w, D) on their grid; masks (N, H, W) in the eval view's pixels."""
    if train_tokens.ndim != 4 or test_tokens.ndim != 4:
        raise ValueError("tokens must be laid out on their grid: (N, h, w, D)")
    if train_tokens.shape[0] != train_seg.shape[0] or test_tokens.shape[0] != test_seg.shape[0]:
        raise ValueError("one mask per image")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if train_tokens.shape[0] < 2:
        raise ValueError("the dense probe needs at least 2 training images")
    if upsample not in ("nearest", "bilinear"):
        raise ValueError(f"upsample must be 'nearest' or 'bilinear', got '{upsample}'")
    valid = [s[(s != IGNORE) & (s >= 0)] for s in (train_seg, test_seg)]
    k = int(num_classes or max(int(v.max()) if v.numel() else 0 for v in valid) + 1)
    k = max(k, 2)
    n, h, w, d = train_tokens.shape
    grid = (h, w)
    xtr, xte = standardise(train_tokens.reshape(-1, d).float(), test_tokens.reshape(-1, d).float())
    xtr, xte = xtr.view(n, h * w, d), xte.view(test_tokens.shape[0], h * w, d)
    ytr = patch_targets(train_seg, grid, k).view(n, h * w, k)

    def fit(rows: torch.Tensor, l2: float):
        x, y = xtr[rows].reshape(-1, d), ytr[rows].reshape(-1, k)
        keep = y.sum(1) > 0  # patches with no valid pixel teach nothing
        return fit_logistic(x[keep], y[keep], k, l2, max_iter=max_iter)

    def score(x: torch.Tensor, seg: torch.Tensor, wb) -> Dict[str, float]:
        logits = _logits(x.reshape(-1, d), *wb).view(x.shape[0], h, w, k)
        return iou_scores(confusion(logits_to_pixels(logits, seg.shape[-2:], upsample), seg, k))

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    val_rows, fit_rows = perm[:n_val], perm[n_val:]
    val_miou: Dict[str, float] = {}
    best_l2, best = None, -1.0
    for l2 in sorted(l2_grid, reverse=True):  # strongest first: a tie keeps the more regularised model
        m = score(xtr[val_rows], train_seg[val_rows], fit(fit_rows, l2))["miou"]
        val_miou[f"{l2:g}"] = m
        if m > best:
            best_l2, best = l2, m
    wb = fit(torch.arange(n), best_l2)
    test = score(xte, test_seg, wb)
    train = score(xtr, train_seg, wb)
    return {**test, "train_miou": train["miou"], "l2": best_l2, "val_miou": val_miou,
            "n_train": n, "n_test": int(test_tokens.shape[0]), "grid": f"{h}x{w}", "dim": d,
            "num_seg_classes": k, "upsample": upsample}
