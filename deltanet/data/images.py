"""Image decoding with Pillow and bilinear resizing of image arrays, for the image datasets.

``decode_image`` reads one PNG/JPEG/BMP/GIF file into a float32 ``(C, H, W)`` array in [0, 1]
at a chosen size and mode, refusing empty, truncated, corrupt and absurdly large files with a
reason (``BadImage``). ``resize_images`` resizes a batch ``(N, C, H, W)`` with the same
bilinear filter as Pillow (antialiased when shrinking), as one matrix product per axis.
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MODES = ("gray", "rgb")
# The most pixels one image may have: 64 megapixels (8192x8192). Pillow's own guard
# (Image.MAX_IMAGE_PIXELS, 89 M) only warns below twice its value; a header claiming more is
# refused here before anything is decoded.
MAX_IMAGE_PIXELS = 8192 * 8192
# The most values one decoded example may hold (e.g. 3x1024x1024): a model takes no more.
MAX_EXAMPLE_VALUES = 3 * 1024 * 1024
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")


class BadImage(ValueError):
    """A file that is not a readable image: its path and why."""


def parse_image_size(value: int | str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``28`` or ``"28"`` -> ``(28, 28)``; ``"28x32"`` or ``(28, 32)`` -> ``(28, 32)`` as
    (height, width); None stays None. Raises ValueError on anything else, naming it."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = [int(p) for p in value.lower().replace(",", "x").split("x")]
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            parts = [int(value)]
        else:
            parts = [int(p) for p in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1 or parts[0] * parts[1] > MAX_IMAGE_PIXELS:
        raise ValueError(
            "image_size must be one size or HEIGHTxWIDTH, each at least 1 (e.g. 28 or 28x32), "
            f"at most {MAX_IMAGE_PIXELS:,} pixels. Received: {value!r}."
        )
    return parts[0], parts[1]


def check_mode(mode: str | None) -> str | None:
    """``image_mode``: None (chosen from the data), "gray" or "rgb"; ValueError otherwise."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"image_mode must be 'gray' or 'rgb'. Received: {mode!r}.")
    return mode


def probe_image(path: Path) -> tuple[tuple[int, int], bool]:
    """``((height, width), is_gray)`` of an image file from its header; raises BadImage."""
    from PIL import Image

    if path.stat().st_size == 0:
        raise BadImage(f"{path}: an empty file (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(path) as img:
                width, height, mode = img.width, img.height, img.mode
    except Image.DecompressionBombError as err:
        raise BadImage(f"{path}: too large to decode ({err}).") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as err:
        raise BadImage(f"{path}: not a readable image ({err}).") from None
    if width * height > MAX_IMAGE_PIXELS or 0 in (width, height):
        raise BadImage(
            f"{path}: an image of {width}x{height} pixels, which deltanet does not decode "
            f"(from 1 to {MAX_IMAGE_PIXELS:,} pixels): resize it first."
        )
    return (height, width), mode in GRAY_MODES


def decode_image(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image file as float32 ``(C, H, W)`` in [0, 1]: C = 1 ("gray") or 3 ("rgb"), resized
    bilinearly to ``size = (H, W)``. 16-bit images keep their range. Raises BadImage."""
    from PIL import Image

    probe_image(path)  # size bound and empty files, before any pixel is decoded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # a truncated or corrupt file fails here, not later
                x = _pixels(img, (size[1], size[0]), mode)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as err:
        raise BadImage(f"{path}: not a readable image ({err}).") from None
    return x


def _pixels(img, wh: tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    if img.mode in SIXTEEN_BIT:  # "L" would clip 16-bit values at 255
        gray = np.asarray(img, dtype=np.float32)
        # "I" (32-bit) holds 16-bit PNGs, or 8-bit values some encoders widen
        gray /= np.float32(65535 if img.mode != "I" or gray.max() > 255 else 255)
        x = np.asarray(Image.fromarray(gray, "F").resize(wh, bilinear), dtype=np.float32)
        x = x[None] if mode == "gray" else np.repeat(x[None], 3, axis=0)
        return np.clip(x, 0, 1)
    img = img.convert("L" if mode == "gray" else "RGB")
    x = np.asarray(img.resize(wh, bilinear), dtype=np.float32) / np.float32(255)
    return x[None] if mode == "gray" else np.ascontiguousarray(np.moveaxis(x, -1, 0))


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of Pillow's bilinear filter: a triangle of support 1 input
    pixel when enlarging, stretched to the scale when shrinking (antialiasing)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    taps = np.arange(n_in) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centers[:, None]) / support)
    return w / w.sum(axis=1, keepdims=True)


def resize_images(x: np.ndarray, size: tuple[int, int], chunk: int = 4096) -> np.ndarray:
    """``x (N, C, H, W)`` resized bilinearly to ``(N, C, *size)``, float32, ``chunk`` images
    at a time (memory for one chunk's result, not a copy of ``x`` per step)."""
    if x.ndim != 4:
        raise ValueError(f"image_size needs images (N, C, H, W). Received shape {x.shape}.")
    rows = _bilinear_matrix(x.shape[2], size[0]).astype(np.float32)
    cols = _bilinear_matrix(x.shape[3], size[1]).astype(np.float32)
    out = np.empty((len(x), x.shape[1], *size), np.float32)
    for start in range(0, len(x), chunk):
        part = np.asarray(x[start : start + chunk], dtype=np.float32)
        out[start : start + chunk] = rows @ part @ cols.T
    return out


def example_values(size: tuple[int, int], mode: str) -> int:
    """Values per decoded example, checked against ``MAX_EXAMPLE_VALUES``."""
    n = (1 if mode == "gray" else 3) * math.prod(size)
    if n > MAX_EXAMPLE_VALUES:
        raise ValueError(
            f"images of {size[0]}x{size[1]} pixels in {mode} hold {n:,} values each, more than "
            f"deltanet trains on ({MAX_EXAMPLE_VALUES:,}): give a smaller image_size."
        )
    return n
