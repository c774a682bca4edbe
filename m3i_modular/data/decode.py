"""Encoded image bytes -> 8-bit RGB that keeps what the file holds, or a DataError (the sample is skipped and
counted by the reader, `data_skipped` in metrics.jsonl; an unreadable input of `preprocess.py images`).

- Size first: the header is read without decoding a pixel, and an image of more than `max_pixels` pixels is
  refused before it is decoded (a 97 KB PNG can declare 10000 x 10000 = 2 GB of pixels). The default is
  PIL's MAX_IMAGE_PIXELS; 0 means no limit.
- Orientation: the EXIF orientation tag is applied (a phone photo stands upright).
- Value range, scaled, never clipped: 16-bit and 32-bit integer images (I;16, I;16B, I) map 0..65535 to
  0..255 (an I image with values outside 0..65535 maps its own min..max); float images (F) map 0..1 to
  0..255 when they lie in it, else their own min..max; NaN or infinite pixels are refused.
- Transparency (RGBA, LA, PA, a palette or grey image with a transparent colour): composited over white,
  so transparent pixels are one colour whatever the file stores under them.
- 1-bit, palette, CMYK, YCbCr and the other 8-bit modes: PIL's conversion to RGB.
"""
from __future__ import annotations

import io
import warnings
from typing import Tuple

import numpy as np
import torch

from ..errors import DataError, library_message

DEFAULT_MAX_PIXELS = 89_478_485   # PIL's Image.MAX_IMAGE_PIXELS (1024 ** 3 // 4 // 3)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
BACKGROUND = (255, 255, 255, 255)
ORIENTATION = 0x0112              # the EXIF tag; 1 = upright


def check_max_pixels(value) -> int:
    """A source's or a flag's pixel limit: an int >= 0 (0: none). Raises ValueError with the reason."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise ValueError(f"max_image_pixels must be a whole number >= 0 (0: no limit), got {value!r}")
    return int(value)


def _open_header(data: bytes):
    """Image.open (the header only) without PIL's own size check: ours is made on the header, with the
    configured limit, and names it (PIL's would warn past MAX_IMAGE_PIXELS and refuse past twice it)."""
    from PIL import Image
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS):
    """(the decoded, upright PIL image, its format, its mode as stored). DataError when the bytes are not a whole
    readable image or declare more than max_pixels pixels (checked before decoding)."""
    from PIL import ImageOps
    try:
        im = _open_header(data)
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise DataError(f"cannot decode image ({library_message(e)})") from None
    w, h = im.size
    if max_pixels and w * h > max_pixels:
        im.close()
        raise DataError(f"image of {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                        f"(max_image_pixels), refused before decoding")
    fmt, mode = im.format, im.mode
    try:
        im.load()  # a full decode: a truncated file fails here, not later
        if im.getexif().get(ORIENTATION, 1) != 1:
            im = ImageOps.exif_transpose(im)
    except Exception as e:
        raise DataError(f"cannot decode image ({library_message(e)})") from None
    return im, fmt, mode


def _scaled(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """arr's values lo..hi -> 0..255 (uint8), rounded."""
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.rint((arr.astype(np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def grey_to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    """One channel of more than 8 bits -> uint8 by its value range (see the module's docstring)."""
    if mode == "F":
        if not np.isfinite(arr).all():
            raise DataError("float image holds NaN or infinite pixels")
        lo, hi = float(arr.min()), float(arr.max())
        return _scaled(arr, 0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else _scaled(arr, lo, hi)
    lo, hi = int(arr.min()), int(arr.max())
    return _scaled(arr, 0, 65535) if lo >= 0 and hi <= 65535 else _scaled(arr, lo, hi)


def to_rgb(im):
    """A decoded PIL image of any mode -> mode RGB, its information kept (DataError for a mode it cannot)."""
    from PIL import Image
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    try:
        if mode == "F" or mode == "I" or mode.startswith("I;"):
            return Image.fromarray(grey_to_8bit(np.asarray(im), mode), "L").convert("RGB")
        if mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in im.info):
            rgba = im.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", im.size, BACKGROUND), rgba).convert("RGB")
        return im.convert("RGB")
    except DataError:
        raise
    except Exception as e:  # a mode PIL cannot convert
        raise DataError(f"cannot convert an image of mode {mode} to RGB ({library_message(e)})") from None


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Tuple[object, str, str]:
    """(RGB PIL image, the file's format, its stored mode)."""
    im, fmt, mode = open_image(data, max_pixels)
    return to_rgb(im), fmt, mode


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Encoded image bytes -> uint8 (3, H, W); DataError when the bytes are not a whole, readable image or
    are refused (size, NaN pixels, an unconvertible mode)."""
    rgb = decode_rgb(data, max_pixels)[0]
    arr = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())
