"""`synthetic_shapes`: an embedded image source generated on the fly, so a recipe runs with no download.

Each sample is a function of (seed, split, index) alone. The label is the shape; colour, size, position,
rotation and background texture are nuisances drawn independently of it, so raw pixels (and random-init
features) separate the classes poorly while a trained encoder can learn them. A caption states the
attributes, and a pixel mask marks the shape (value = label + 1, 0 = background) for dense probes.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch

from ...registry import DATASETS, config_error
from .synthetic_base import SPLITS, SyntheticSource


COLOURS = {
    "red": (235, 60, 60), "green": (70, 215, 90), "blue": (90, 130, 250), "yellow": (240, 225, 70),
    "orange": (245, 160, 50), "purple": (190, 110, 235), "cyan": (70, 225, 235), "pink": (250, 150, 200),
    "white": (245, 245, 245), "gray": (175, 175, 175),
}
TEXTURES = ("plain", "noisy", "striped", "checkered", "gradient")
# (name, radius range as a fraction of the image side)
SIZES = (("small", 0.14, 0.21), ("medium", 0.21, 0.29), ("large", 0.29, 0.38))


def _regular(n: int, radius: float = 1.0, phase: float = math.pi / 2) -> np.ndarray:
    a = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    outer = _regular(points)
    inner_v = _regular(points, inner, math.pi / 2 + math.pi / points)
    return np.stack([outer, inner_v], 1).reshape(-1, 2)


_ARROW = np.array([(-1, -0.25), (0.15, -0.25), (0.15, -0.65), (1, 0), (0.15, 0.65), (0.15, 0.25), (-1, 0.25)],
                  dtype=np.float64)


def _in_polygon(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over all points and edges."""
    xi, yi = poly[:, 0, None], poly[:, 1, None]
    xj, yj = np.roll(poly[:, 0], 1)[:, None], np.roll(poly[:, 1], 1)[:, None]
    crosses = (yi > y) != (yj > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = (xj - xi) * (y - yi) / (yj - yi) + xi
    return ((crosses & (x < x_at)).sum(0) % 2).astype(bool)


def _shape_inside(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside test in the shape's own unit frame (every shape fits in the unit disc)."""
    r2 = x * x + y * y
    if name == "circle":
        return r2 <= 0.9
    if name == "square":
        return (np.abs(x) <= 0.72) & (np.abs(y) <= 0.72)
    if name == "triangle":
        return _in_polygon(x, y, _regular(3))
    if name == "star":
        return _in_polygon(x, y, _star())
    if name == "cross":
        return ((np.abs(x) <= 0.28) & (np.abs(y) <= 0.95)) | ((np.abs(y) <= 0.28) & (np.abs(x) <= 0.95))
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.55 ** 2)
    if name == "diamond":  # an elongated rhombus, so it is not a rotated square
        return np.abs(x) / 0.55 + np.abs(y) <= 1.0
    if name == "hexagon":
        return _in_polygon(x, y, _regular(6, phase=0.0))
    if name == "crescent":
        return (r2 <= 1.0) & ((x - 0.5) ** 2 + y * y > 0.8 ** 2)
    if name == "arrow":
        return _in_polygon(x, y, _ARROW)
    raise AssertionError(name)


CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "crescent", "arrow")


def _where(cx: float, cy: float) -> str:
    col = ("left", "", "right")[min(int(cx * 3), 2)]
    row = ("top", "", "bottom")[min(int(cy * 3), 2)]
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return "in the center"


@DATASETS.register("synthetic_shapes")
class SyntheticShapes(SyntheticSource):
    """Map-style source of raw samples {"key", "image", "label", "caption", "seg"}."""

    classes = CLASSES

    def __init__(self, *, num_samples: int = 4096, image_size: int = 32, split: str = "train", seed: int = 0,
                 label_fraction: float = 1.0, caption_fraction: float = 1.0):
        self._init_common(num_samples=num_samples, split=split, seed=seed, label_fraction=label_fraction,
                          caption_fraction=caption_fraction)
        if image_size < 8:
            raise config_error(f"image_size must be >= 8 pixels, got {image_size}", "image_size")
        self.image_size = image_size
        # pixel centres of a 2x supersampled grid, for anti-aliased coverage
        s = 2 * image_size
        c = (np.arange(s) + 0.5) / s
        self._gx, self._gy = np.meshgrid(c, c)
        p = (np.arange(image_size) + 0.5) / image_size
        self._px, self._py = np.meshgrid(p, p)

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        # the field-dropping draws come first, so the fractions never change the image
        keep_label = rng.random() < self.label_fraction
        keep_caption = rng.random() < self.caption_fraction
        label = int(rng.integers(len(self.classes)))
        image, seg, attrs = self._render(rng, label)
        caption = (f"a {attrs['size']} {attrs['colour']} {self.classes[label]} {attrs['where']}"
                   f" on a {attrs['texture']} background")
        return {
            "key": f"synthetic_shapes/{self.split}/{self.seed}/{index:08d}",
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "label": label if keep_label else None,
            "caption": caption if keep_caption else None,
            "seg": torch.from_numpy(seg),
        }

    def _render(self, rng: np.random.Generator, label: int):
        n = self.image_size
        colour_name = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        colour = np.clip(np.array(COLOURS[colour_name]) + rng.integers(-20, 21, 3), 0, 255).astype(np.float64)
        size_name, lo, hi = SIZES[int(rng.integers(len(SIZES)))]
        radius = rng.uniform(lo, hi)
        cx, cy = rng.uniform(radius, 1 - radius, 2)
        angle = rng.uniform(0, 2 * math.pi)
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
        background = self._background(rng, texture, colour)

        # map supersampled pixel centres into the shape's unit frame (rotate by -angle, scale by radius)
        dx, dy = self._gx - cx, self._gy - cy
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = (ca * dx + sa * dy) / radius, (-sa * dx + ca * dy) / radius
        inside = _shape_inside(self.classes[label], u.ravel(), v.ravel()).reshape(2 * n, 2 * n)
        alpha = inside.reshape(n, 2, n, 2).mean((1, 3))
        image = background * (1 - alpha[..., None]) + colour * alpha[..., None]
        image += rng.normal(0.0, 3.0, image.shape)  # mild sensor noise everywhere
        seg = ((alpha >= 0.5) * (label + 1)).astype(np.uint8)
        attrs = {"size": size_name, "colour": colour_name, "where": _where(cx, cy), "texture": texture}
        return np.clip(np.rint(image), 0, 255).astype(np.uint8), seg, attrs

    def _background(self, rng: np.random.Generator, texture: str, colour: np.ndarray) -> np.ndarray:
        """(n, n, 3) float background; its colours keep a minimum distance from the shape colour."""
        cols = []
        for _ in range(32):  # rejection keeps the shape visible; 32 tries essentially never run out
            c = rng.uniform(0, 150, 3)
            if np.abs(c - colour).sum() > 150:
                cols.append(c)
                if len(cols) == 2:
                    break
        while len(cols) < 2:
            cols.append(255.0 - colour)
        a, b = cols
        x, y, n = self._px, self._py, self.image_size
        if texture == "plain":
            t = np.zeros_like(x)
        elif texture == "noisy":
            return a + rng.normal(0.0, 28.0, (n, n, 3))
        elif texture == "striped":
            theta = rng.uniform(0, math.pi)
            period = rng.uniform(0.12, 0.25)
            phase = rng.uniform(0, 1)
            t = (np.sin(2 * math.pi * ((x * math.cos(theta) + y * math.sin(theta)) / period + phase)) > 0)
        elif texture == "checkered":
            period = rng.uniform(0.12, 0.25)
            ox, oy = rng.uniform(0, 1, 2)
            t = (np.floor(x / period + ox) + np.floor(y / period + oy)) % 2
        else:  # gradient
            theta = rng.uniform(0, 2 * math.pi)
            t = (x - 0.5) * math.cos(theta) + (y - 0.5) * math.sin(theta)
            t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        t = np.asarray(t, dtype=np.float64)[..., None]
        return a * (1 - t) + b * t

