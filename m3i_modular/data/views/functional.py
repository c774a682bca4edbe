"""Deterministic image ops on float (C, H, W) tensors in [0, 1]; the transforms add the randomness.

Written against the usual definitions (ITU-R 601 luma, HSV hue rotation, separable Gaussian with reflect
padding, antialiased resize) so results agree with torchvision's functionals without importing it.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F

LUMA = (0.2989, 0.587, 0.114)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def resize(img: torch.Tensor, size: Tuple[int, int], interpolation: str = "bilinear",
           antialias: bool = True) -> torch.Tensor:
    """Resize (C, H, W) to (C, *size), pixel centres aligned; `antialias` low-passes when shrinking with
    bilinear/bicubic (its filter taps are slightly asymmetric at non-integer factors: up to ~0.1 px)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    kw = {} if interpolation == "nearest" else {"align_corners": False, "antialias": antialias}
    mode = "nearest-exact" if interpolation == "nearest" else interpolation
    return F.interpolate(img[None], size=tuple(size), mode=mode, **kw)[0]


def crop(img: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    return img[..., top:top + height, left:left + width]


def hflip(img: torch.Tensor) -> torch.Tensor:
    return img.flip(-1)


def to_grayscale(img: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (1, H, W) luma."""
    r, g, b = img.unbind(-3)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(-3)


def _blend(img: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * img + (1.0 - factor) * other).clamp(0.0, 1.0)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    return (img * factor).clamp(0.0, 1.0)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    mean = to_grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, factor)


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, to_grayscale(img), factor)


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(-3)
    maxc, _ = img.max(-3)
    minc, _ = img.min(-3)
    delta = maxc - minc
    sat = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, (g - b) / safe,
                      torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, sat, maxc], -3)


def hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    h, s, v = img.unbind(-3)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    # sector i -> (r, g, b) drawn from (v, t, p, q) following the HSV hexcone
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(img)
    for k, rgb in enumerate(table):
        sel = (i == k).unsqueeze(-3)
        out = torch.where(sel, torch.stack(rgb, -3), out)
    return out


def adjust_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate hue by `shift` turns (in [-0.5, 0.5])."""
    if shift == 0:
        return img
    hsv = rgb_to_hsv(img)
    hsv = torch.stack([(hsv[..., 0, :, :] + shift) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]], -3)
    return hsv_to_rgb(hsv)


def gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2.0
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur_kernel_size(height: int, width: int) -> int:
    """Odd kernel covering ~10% of the shorter side (23 px at 224, as in SimCLR/BYOL), at least 3."""
    return max(3, 2 * round(0.05 * min(height, width)) + 1)


def gaussian_blur(img: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    c = img.shape[-3]
    k = gaussian_kernel1d(kernel_size, sigma).to(img.dtype)
    pad = kernel_size // 2
    x = F.pad(img[None], (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, kernel_size), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, kernel_size, 1), groups=c)
    return x[0]


def solarize(img: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.where(img >= threshold, 1.0 - img, img)


def normalize(img: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.as_tensor(mean, dtype=img.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=img.dtype).view(-1, 1, 1)
    return (img - m) / s


def sample_crop_box(height: int, width: int, scale: Tuple[float, float], ratio: Tuple[float, float],
                    g: torch.Generator, attempts: int = 10) -> Tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with area fraction in `scale` and aspect (w/h) in `ratio`,
    log-uniform in the aspect; after `attempts` misses, the largest central crop with the aspect clamped."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        u = torch.rand(2, generator=g).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + u[1] * (log_hi - log_lo))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
