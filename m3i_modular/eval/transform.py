"""The evaluation view of a recipe (resize + centre crop to the training input size, then the recipe's own
normalisation), and the conversion of user images (PIL, uint8 tensors) into a model-ready batch."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..data.views.pipeline import apply_view
from ..errors import ConfigError, DataError
from ..registry import TRANSFORMS, build, config_path

SIZED = ("random_resized_crop", "resize", "center_crop")


def _eval_view_name(cfg: dict) -> Optional[str]:
    views = cfg.get("views") or {}
    for obj in (cfg.get("model", {}).get("objectives") or {}).values():
        if isinstance(obj, dict) and obj.get("input") in views:
            return obj["input"]
    return next(iter(views), None)


def eval_transform(cfg: dict, *, view: Optional[str] = None, crop_pct: float = 1.0) -> List[Any]:
    """Transforms for evaluation: resize the shorter side to size / crop_pct, centre-crop `size`, normalise
    like the recipe's view. `size` is the last size the view produces (or the patch embedding's image_size).
    crop_pct 1.0 keeps the whole image (the right choice when sources are already at the model's size)."""
    if not 0.0 < crop_pct <= 1.0:
        raise ConfigError(f"crop_pct must be in (0, 1], got {crop_pct}")
    views: Dict[str, list] = cfg.get("views") or {}
    name = view or _eval_view_name(cfg)
    if view is not None and view not in views:
        raise ConfigError(f"no view '{view}' in the recipe (views: {', '.join(views) or 'none'})")
    steps = views.get(name, []) if name else []
    size, norm = None, None
    for step in steps:
        if isinstance(step, dict) and step.get("type") in SIZED and "size" in step:
            size = step["size"]
        if isinstance(step, dict) and step.get("type") == "normalize":
            norm = {k: v for k, v in step.items() if k in ("type", "mean", "std")}
    if size is None:
        size = (cfg.get("model", {}).get("embedding") or {}).get("image_size")
    if size is None:
        raise ConfigError("cannot tell the input size for evaluation: the recipe's view has no crop or resize "
                          "and model.embedding has no image_size")
    if isinstance(size, int):
        resize: Any = int(round(size / crop_pct))
    else:
        resize = [int(round(s / crop_pct)) for s in size]
    spec = [{"type": "resize", "size": resize}, {"type": "center_crop", "size": size}] + ([norm] if norm else [])
    with config_path(f"views.{name}" if name else "eval_transform", absolute=True):
        return [build(TRANSFORMS, s, key=i) for i, s in enumerate(spec)]


def _to_uint8_chw(image: Any) -> torch.Tensor:
    if torch.is_tensor(image):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise DataError(f"expected a uint8 (3, H, W) tensor, got {tuple(image.shape)} {image.dtype}; "
                            f"float tensors must already be preprocessed batches (B, 3, H, W)")
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image
    if hasattr(image, "convert"):  # a PIL image
        arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)
    raise DataError(f"cannot read an image from {type(image).__name__}: pass PIL images or uint8 tensors")


def preprocess(images: Any, steps: Sequence[Any]) -> torch.Tensor:
    """PIL image(s) or uint8 tensor(s) ((3, H, W), (B, 3, H, W) or a list) -> float (B, 3, h, w)."""
    if torch.is_tensor(images) and images.ndim == 4:
        images = list(images)
    elif not isinstance(images, (list, tuple)):
        images = [images]
    if not images:
        raise DataError("no images given")
    g = torch.Generator().manual_seed(0)  # eval transforms draw nothing; apply_view wants a generator
    return torch.stack([apply_view(steps, _to_uint8_chw(im), g).image for im in images])
