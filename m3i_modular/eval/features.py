"""Reading an evaluation split and its frozen features. Samples go through the eval view (pixel masks carried
through the same crop and resize, captions on request); an unreadable sample is skipped and counted. Features
are the mean of the last layer's tokens (prefix tokens such as CLS left out) or the grid tokens on their grid,
computed batch by batch as the split is read, without gradients, in eval mode (the model's mode is restored
afterwards)."""
import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.views.pipeline import apply_view
from ..errors import DataError
from .sources import build_split_source  # noqa: F401  (re-exported: the training monitor builds splits here)


def mean_pooled(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    tokens = model.forward_features(images)
    prefix = getattr(model.embedding, "num_prefix", 0)
    return tokens[:, prefix:].float().mean(1)


def patch_tokens(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Last-layer grid tokens on their grid, (B, h, w, D) float; prefix tokens (CLS) left out. The grid is
    the encoder's output grid (a hierarchical encoder downsamples the embedding's)."""
    grid, prefix = None, getattr(getattr(model, "embedding", None), "num_prefix", 0)
    if hasattr(model, "encode"):
        enc = model.encode({"views": {"input": images}}, "input")
        z, prefix, grid = enc.z, enc.prefix, getattr(enc.tokens, "grid", None)
    else:
        z = model.forward_features(images)
    z = z[:, prefix:].float()
    n = z.shape[1]
    if grid is None or grid[0] * grid[1] != n:  # square-ish grid with the image's aspect ratio
        hgt, wid = images.shape[-2:]
        h = max(1, round((n * hgt / wid) ** 0.5))
        if n % h:
            raise DataError(f"cannot lay {n} tokens on a grid for a {hgt}x{wid} image")
        grid = (h, n // h)
    return z.reshape(z.shape[0], grid[0], grid[1], z.shape[-1])


class EvalSplit(Dataset):
    """Samples of a source through the eval view: {"image", "label" (-1 without one), and on request "seg"
    (the pixel mask carried through the same crop and resize, nearest neighbour) and "caption"}. An
    unreadable sample (the source raises DataError) comes back as None and is counted, not fatal."""

    def __init__(self, source: Any, steps: Sequence[Any], indices: Optional[Sequence[int]] = None, *,
                 limit: Optional[int] = None, with_seg: bool = False, with_caption: bool = False):
        self.source, self.steps = source, list(steps)
        if indices is None:
            n = len(source) if limit is None else min(int(limit), len(source))
            indices = range(n)
        self.indices = [int(i) for i in indices]
        self.with_seg, self.with_caption = with_seg, with_caption

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Optional[Dict[str, Any]]:
        index = self.indices[i]
        try:
            raw = self.source[index]
        except DataError:
            return None
        if raw is None:
            return None
        if raw.get("image") is None:
            raise DataError(f"sample '{raw.get('key', index)}' has no image to evaluate")
        g = torch.Generator().manual_seed(0)
        view = apply_view(self.steps, raw["image"], g)
        label = raw.get("label")
        item: Dict[str, Any] = {"image": view.image, "label": -1 if label is None else int(label)}
        if self.with_seg:
            seg = raw.get("seg")
            item["seg"] = None if seg is None else view_mask(torch.as_tensor(seg), view)
        if self.with_caption:
            item["caption"] = raw.get("caption")
        return item


def view_mask(seg: torch.Tensor, view: Any) -> torch.Tensor:
    """A source pixel mask (h, w) resampled (nearest) onto the view's pixel grid through its crop box and
    flip: (H, W) long, the label of the source pixel under each view pixel centre."""
    h, w = view.image.shape[-2:]
    v = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    u = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    x, y = view.to_source(u, v)
    sh, sw = seg.shape[-2:]
    col = (x * sw).floor().long().clamp(0, sw - 1)
    row = (y * sh).floor().long().clamp(0, sh - 1)
    return seg.long()[row[:, None], col[None, :]]


def _collate(items):
    return items


@dataclass
class EvalData:
    """An evaluation split after reading: `x` = images (N, 3, H, W) through the eval view, or what `encode`
    made of them (features (N, D), patch tokens (N, h, w, D)); labels (N,) (-1: none); where asked, pixel
    masks (N, H, W) and captions. `skipped` unreadable samples were left out."""
    x: torch.Tensor
    labels: torch.Tensor
    seg: Optional[torch.Tensor] = None
    captions: Optional[List[Optional[str]]] = None
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, keep: torch.Tensor) -> "EvalData":
        """The rows where the bool mask `keep` is true."""
        caps = None if self.captions is None else [c for c, k in zip(self.captions, keep.tolist()) if k]
        return EvalData(self.x[keep], self.labels[keep], None if self.seg is None else self.seg[keep], caps,
                        self.skipped)


@contextlib.contextmanager
def frozen(model: torch.nn.Module):
    """Eval mode without gradients; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def read_split(source: Any, steps: Sequence[Any], indices: Optional[Sequence[int]] = None, *,
               limit: Optional[int] = None, encode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
               batch_size: int = 256, num_workers: int = 0, with_seg: bool = False,
               with_caption: bool = False) -> EvalData:
    """Every readable sample of `indices` (default: the first `limit`) through the eval view; with `encode`
    each batch of images is encoded as it is read (only the encodings are kept)."""
    ds = EvalSplit(source, steps, indices, limit=limit, with_seg=with_seg, with_caption=with_caption)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate)
    xs, labels, segs, captions, skipped = [], [], [], [], 0
    for items in loader:
        kept = [it for it in items if it is not None]
        skipped += len(items) - len(kept)
        if not kept:
            continue
        x = torch.stack([it["image"] for it in kept])
        xs.append(x if encode is None else encode(x).detach().float().cpu())
        labels += [it["label"] for it in kept]
        if with_seg:
            if any(it["seg"] is None for it in kept):
                raise DataError("a sample has no pixel mask ('seg'): a dense probe needs a source that yields "
                                "masks (synthetic_shapes does)")
            segs += [it["seg"] for it in kept]
        if with_caption:
            captions += [it["caption"] for it in kept]
    if not xs:
        raise DataError(f"none of the {len(ds)} samples of the evaluation split could be read"
                        if len(ds) else "the evaluation split is empty")
    return EvalData(torch.cat(xs), torch.tensor(labels, dtype=torch.long),
                    torch.stack(segs) if with_seg else None, captions if with_caption else None, skipped)


def load_split(source: Any, steps: Sequence[Any], *, limit: Optional[int] = None,
               indices: Optional[Sequence[int]] = None, batch_size: int = 256,
               num_workers: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """All labelled images of the split (N, 3, H, W) and their labels (N,)."""
    data = read_split(source, steps, indices, limit=limit, batch_size=batch_size, num_workers=num_workers)
    keep = data.labels >= 0  # unlabelled samples cannot be scored
    if int(keep.sum()) == 0:
        raise DataError("the evaluation split has no labelled samples")
    return data.x[keep], data.labels[keep]


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
