"""Registered view transforms: `t(view, g) -> View`, every random draw taken from the generator `g`.

Geometric transforms (crop, resize, flip) keep the view's source geometry exact (see view.py); photometric
ones touch only pixels. Each draws the same number of values from `g` whatever it decides, where cheap, so a
probability change does not shift the draws of later transforms more than necessary.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from ...errors import DataError
from ...registry import TRANSFORMS, config_error
from . import functional as Fn
from .view import View

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size: Union[int, List[int]], key: str = "size") -> Tuple[int, int]:
    if isinstance(size, int):
        size = [size, size]
    if len(size) != 2 or any(s < 1 for s in size):
        raise config_error(f"size must be a positive int or [height, width], got {size!r}", key)
    return int(size[0]), int(size[1])


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise config_error(f"p must be a probability in [0, 1], got {p}", "p")
    return float(p)


def _check_interp(interpolation: str) -> str:
    if interpolation not in Fn.INTERPOLATIONS:
        raise config_error(f"unknown interpolation '{interpolation}' (valid: {', '.join(Fn.INTERPOLATIONS)})",
                           "interpolation")
    return interpolation


def _check_range(value: Tuple[float, float], key: str, low: float = 0.0) -> Tuple[float, float]:
    if len(value) != 2 or not low <= value[0] <= value[1]:
        raise config_error(f"{key} must be [min, max] with {low} <= min <= max, got {list(value)}", key)
    return float(value[0]), float(value[1])


def _factor(strength: float, u: float) -> float:
    """Uniform in [max(0, 1 - strength), 1 + strength] from u in [0, 1)."""
    lo = max(0.0, 1.0 - strength)
    return lo + u * (1.0 + strength - lo)


def _coin(p: float, g: torch.Generator) -> bool:
    return bool(torch.rand(1, generator=g) < p)


class Transform:
    geometric = False   # moves pixels: must come before a masker
    masker = False

    def __call__(self, view: View, g: torch.Generator) -> View:
        raise NotImplementedError


def crop_resize(view: View, top: int, left: int, h: int, w: int, size: Tuple[int, int],
                interpolation: str, antialias: bool = True) -> View:
    """Crop whole pixels [top, top+h) x [left, left+w) of the view, then resize to `size`."""
    H, W = view.image.shape[-2:]
    img = Fn.resize(Fn.crop(view.image, top, left, h, w), size, interpolation, antialias)
    return view.cropped(img, (left / W, top / H, (left + w) / W, (top + h) / H))


@TRANSFORMS.register("random_resized_crop")
class RandomResizedCrop(Transform):
    """A random crop of a random area share and aspect ratio, resized to `size` (Inception-style)."""
    geometric = True

    def __init__(self, *, size: Union[int, List[int]], scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = "bilinear",
                 antialias: bool = True):
        self.size = _pair(size)
        self.scale = _check_range(scale, "scale")
        if self.scale[1] > 1 or self.scale[1] <= 0:
            raise config_error(f"scale must lie in (0, 1], got {list(scale)}", "scale")
        self.ratio = _check_range(ratio, "ratio", low=1e-6)
        self.interpolation = _check_interp(interpolation)
        self.antialias = antialias

    def __call__(self, view: View, g: torch.Generator) -> View:
        H, W = view.image.shape[-2:]
        top, left, h, w = Fn.sample_crop_box(H, W, self.scale, self.ratio, g)
        return crop_resize(view, top, left, h, w, self.size, self.interpolation, self.antialias)


@TRANSFORMS.register("resize")
class Resize(Transform):
    """An int resizes the shorter side (aspect kept); [h, w] resizes to exactly that."""
    geometric = True

    def __init__(self, *, size: Union[int, List[int]], interpolation: str = "bilinear", antialias: bool = True):
        self.size = size if isinstance(size, int) else _pair(size)
        if isinstance(size, int) and size < 1:
            raise config_error(f"size must be positive, got {size}", "size")
        self.interpolation = _check_interp(interpolation)
        self.antialias = antialias

    def __call__(self, view: View, g: torch.Generator) -> View:
        H, W = view.image.shape[-2:]
        if isinstance(self.size, int):
            short, long = (H, W) if H <= W else (W, H)
            new_long = int(self.size * long / short)
            out = (self.size, new_long) if H <= W else (new_long, self.size)
        else:
            out = self.size
        if view.mask is not None:
            raise ValueError("resize a view before masking it, not after")
        return View(Fn.resize(view.image, out, self.interpolation, self.antialias), view.box, view.flip, None)


@TRANSFORMS.register("center_crop")
class CenterCrop(Transform):
    """The central `size` x `size` crop (evaluation)."""
    geometric = True

    def __init__(self, *, size: Union[int, List[int]]):
        self.size = _pair(size)

    def __call__(self, view: View, g: torch.Generator) -> View:
        H, W = view.image.shape[-2:]
        h, w = self.size
        if h > H or w > W:
            raise DataError(f"center_crop of {h}x{w} is larger than the {H}x{W} image; "
                            f"put a 'resize' before it in the view")
        top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
        return crop_resize(view, top, left, h, w, (h, w), "bilinear")


@TRANSFORMS.register("flip")
class Flip(Transform):
    """Horizontal flip with probability p."""
    geometric = True

    def __init__(self, *, p: float = 0.5):
        self.p = _check_p(p)

    def __call__(self, view: View, g: torch.Generator) -> View:
        return view.flipped() if _coin(self.p, g) else view


@TRANSFORMS.register("color_jitter")
class ColorJitter(Transform):
    """With probability p, brightness/contrast/saturation factors from [1 - x, 1 + x] and a hue shift from
    [-hue, hue], applied in a random order."""

    def __init__(self, *, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.2,
                 hue: float = 0.1, p: float = 0.8):
        for key, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise config_error(f"{key} must be >= 0, got {value}", key)
        if not 0 <= hue <= 0.5:
            raise config_error(f"hue must be in [0, 0.5], got {hue}", "hue")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p = _check_p(p)

    def __call__(self, view: View, g: torch.Generator) -> View:
        apply = _coin(self.p, g)
        order = torch.randperm(4, generator=g).tolist()
        u = torch.rand(4, generator=g).tolist()
        if not apply:
            return view
        img = view.image
        for op in order:
            if op == 0 and self.brightness > 0:
                img = Fn.adjust_brightness(img, _factor(self.brightness, u[0]))
            elif op == 1 and self.contrast > 0:
                img = Fn.adjust_contrast(img, _factor(self.contrast, u[1]))
            elif op == 2 and self.saturation > 0:
                img = Fn.adjust_saturation(img, _factor(self.saturation, u[2]))
            elif op == 3 and self.hue > 0:
                img = Fn.adjust_hue(img, (2 * u[3] - 1) * self.hue)
        return View(img, view.box, view.flip, view.mask)


@TRANSFORMS.register("grayscale")
class Grayscale(Transform):
    """With probability p, replace the image by its luma in all three channels."""
    def __init__(self, *, p: float = 0.2):
        self.p = _check_p(p)

    def __call__(self, view: View, g: torch.Generator) -> View:
        if not _coin(self.p, g):
            return view
        return View(Fn.to_grayscale(view.image).expand_as(view.image).clone(), view.box, view.flip, view.mask)


@TRANSFORMS.register("gaussian_blur")
class GaussianBlur(Transform):
    """With probability p, blur with sigma uniform in [min, max] pixels; the kernel covers ~10% of the
    shorter side unless `kernel_size` (odd) is given."""

    def __init__(self, *, sigma: Tuple[float, float] = (0.1, 2.0), p: float = 0.5,
                 kernel_size: Optional[int] = None):
        self.sigma = _check_range(sigma, "sigma", low=1e-6)
        self.p = _check_p(p)
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise config_error(f"kernel_size must be a positive odd int, got {kernel_size}", "kernel_size")
        self.kernel_size = kernel_size

    def __call__(self, view: View, g: torch.Generator) -> View:
        apply = _coin(self.p, g)
        u = float(torch.rand(1, generator=g))
        if not apply:
            return view
        H, W = view.image.shape[-2:]
        k = self.kernel_size or Fn.blur_kernel_size(H, W)
        sigma = self.sigma[0] + u * (self.sigma[1] - self.sigma[0])
        return View(Fn.gaussian_blur(view.image, k, sigma), view.box, view.flip, view.mask)


@TRANSFORMS.register("solarize")
class Solarize(Transform):
    """With probability p, invert the pixels above `threshold`."""
    def __init__(self, *, threshold: float = 0.5, p: float = 0.2):
        self.threshold = float(threshold)
        self.p = _check_p(p)

    def __call__(self, view: View, g: torch.Generator) -> View:
        if not _coin(self.p, g):
            return view
        return View(Fn.solarize(view.image, self.threshold), view.box, view.flip, view.mask)


@TRANSFORMS.register("normalize")
class Normalize(Transform):
    """Subtract the per-channel mean and divide by the std (ImageNet statistics by default)."""
    def __init__(self, *, mean: List[float] = IMAGENET_MEAN, std: List[float] = IMAGENET_STD):
        if len(mean) != 3 or len(std) != 3:
            raise config_error("mean and std need one value per RGB channel (3 each)", "mean")
        if any(s <= 0 for s in std):
            raise config_error(f"std must be positive, got {list(std)}", "std")
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, view: View, g: torch.Generator) -> View:
        return View(Fn.normalize(view.image, self.mean, self.std), view.box, view.flip, view.mask)
