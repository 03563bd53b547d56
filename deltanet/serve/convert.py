"""A drawing (a PNG of any size) -> one model input, made the way the training set was made.

- ``digits`` (scikit-learn's 8x8 digits, UCI optdigits, from NIST's normalised 32x32 bitmaps):
  the digit's bounding box scaled to the bitmap's full height, its width by the same factor up
  to 20 pixels (wider ones are narrowed), centred, binarised, and each 4x4 block's "on" pixels
  counted (0..16); the loader then divides by 16. (In the 1,797 digits every one spans all 8
  rows, and the widest span 6 or 7 columns with the outer two barely inked: 20 of 32 pixels.)
- 28x28 images (MNIST): the bounding box fitted into 20x20 keeping its aspect (anti-aliased
  grey levels), placed in a 28x28 field so that its centre of mass sits at the centre.
- other one-channel images (H, W): MNIST's recipe scaled to the frame (the box 5/7 of it).

Values come back in the dataset's own scale ([0, 1]); the run's standardizer is applied by
the caller, as for any other input. ``Frame`` says where the model's input lies on the
drawing, so a saliency map can be laid over the strokes.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 2048  # a drawing's width and height; checked in the PNG header, before decoding
DIGITS_MAX_WIDTH = 20  # of the 32x32 bitmap: see the module's docstring
INK = 0.5  # the grey level that counts as ink when binarising (the optdigits bitmaps are 0/1)


class ConversionError(ValueError):
    """An image that cannot be a model input; the message names the problem."""


@dataclass(frozen=True)
class Frame:
    """Where the model's input lies on the drawing: its top-left corner and its size, in the
    drawing's pixels (``size`` covers the whole input, e.g. all 8x8 cells of a digit)."""

    left: float
    top: float
    width: float
    height: float


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk; ConversionError when it is not a PNG."""
    if data[:8] != PNG_SIGNATURE:
        raise ConversionError("not a PNG image (the data does not start with the PNG signature).")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ConversionError("a damaged PNG image (no IHDR chunk where the format puts it).")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decode_png(data: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """A PNG as grey levels ``(H, W)`` float32 in [0, 1], light ink on a dark ground.

    Dark ink on light paper (a mean above 0.5) is inverted. An image with transparent pixels
    is read by its opacity, whatever its colours: the strokes on a transparent canvas.
    """
    from PIL import Image

    width, height = png_size(data)
    if not (1 <= width <= max_side and 1 <= height <= max_side):
        raise ConversionError(
            f"a PNG image of {width}x{height} pixels: width and height must be from 1 to "
            f"{max_side}."
        )
    try:
        with Image.open(io.BytesIO(data)) as png:
            rgba = np.asarray(png.convert("RGBA"), dtype=np.float32) / 255
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as err:
        raise ConversionError(f"not a readable PNG image ({err}).") from None
    alpha = rgba[..., 3]
    if alpha.min() < 1:
        return np.ascontiguousarray(alpha)
    grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if grey.mean() > 0.5:
        grey = 1 - grey  # dark ink on light paper
    return grey.clip(0, 1).astype(np.float32)


def _ink_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` (exclusive) of the pixels that hold any ink."""
    rows = np.flatnonzero(img.max(axis=1) > 1 / 255)
    cols = np.flatnonzero(img.max(axis=0) > 1 / 255)
    if rows.size == 0:
        raise ConversionError("the image holds no drawing (every pixel is background).")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _fit(
    img: np.ndarray, side: int, height: int | None = None, max_width: int | None = None
) -> tuple[np.ndarray, Frame, tuple[int, int]]:
    """The ink's bounding box resized (area-averaged): its longer side to ``side``, or its
    height to ``height`` and its width by the same factor up to ``max_width``.

    Returns the resized crop, the frame placing crop pixel (0, 0) on the drawing (with the
    crop's scale), and the crop's ``(h, w)``."""
    from PIL import Image

    top, left, bottom, right = _ink_box(img)
    bh, bw = bottom - top, right - left
    scale = side / max(bh, bw) if height is None else height / bh
    h, w = max(1, round(bh * scale)), max(1, round(bw * scale))
    w = w if max_width is None else min(w, max_width)
    crop = Image.fromarray(img[top:bottom, left:right])
    resized = np.asarray(crop.resize((w, h), Image.Resampling.BOX), dtype=np.float32)
    return resized.clip(0, 1), Frame(left, top, bw / w, bh / h), (h, w)


def _place(frame: Frame, dy: float, dx: float, size: tuple[int, int]) -> Frame:
    """The drawing's rectangle under a field of ``size`` whose crop starts at ``(dy, dx)``;
    ``frame.width/height`` hold the drawing pixels per field pixel."""
    sy, sx = frame.height, frame.width
    return Frame(frame.left - dx * sx, frame.top - dy * sy, size[1] * sx, size[0] * sy)


def to_digits(img: np.ndarray) -> tuple[np.ndarray, Frame]:
    """A drawing ``(H, W)`` -> an optdigits example ``(1, 8, 8)`` in [0, 1] (counts / 16)."""
    crop, frame, (h, w) = _fit(img, 32, height=32, max_width=DIGITS_MAX_WIDTH)
    bitmap = np.zeros((32, 32), dtype=np.float32)
    dy, dx = (32 - h) // 2, (32 - w) // 2
    bitmap[dy : dy + h, dx : dx + w] = crop >= INK
    counts = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    return (counts / 16).astype(np.float32)[None], _place(frame, dy, dx, (32, 32))


def to_mnist(img: np.ndarray, size: tuple[int, int] = (28, 28)) -> tuple[np.ndarray, Frame]:
    """A drawing ``(H, W)`` -> an MNIST-style example ``(1, *size)`` in [0, 1].

    The box takes 20/28 of the field; the centre of mass is moved to the field's centre by a
    whole-pixel shift, as MNIST did (pixel i spans [i, i+1): the centre is at index side/2 -
    0.5)."""
    inner = max(1, round(min(size) * 20 / 28))
    crop, frame, (h, w) = _fit(img, inner)
    mass = crop.sum()
    ys, xs = np.indices(crop.shape)
    cy, cx = (ys * crop).sum() / mass, (xs * crop).sum() / mass
    dy = min(max(round((size[0] - 1) / 2 - cy), 0), size[0] - h)
    dx = min(max(round((size[1] - 1) / 2 - cx), 0), size[1] - w)
    field = np.zeros(size, dtype=np.float32)
    field[dy : dy + h, dx : dx + w] = crop
    return field[None], _place(frame, dy, dx, size)


def recipe_for(data: str | None, input_shape: tuple[int, ...]) -> str | None:
    """``"digits"``, ``"mnist"`` or None (no drawing makes this model's input)."""
    if len(input_shape) != 3 or input_shape[0] != 1:
        return None
    if data == "digits" and input_shape == (1, 8, 8):
        return "digits"
    return "mnist" if min(input_shape[1:]) >= 8 else None


def drawing_to_input(
    img: np.ndarray, recipe: str, input_shape: tuple[int, ...]
) -> tuple[np.ndarray, Frame]:
    """The example ``input_shape`` (dataset scale) made from a drawing by ``recipe``."""
    if recipe == "digits":
        return to_digits(img)
    if recipe == "mnist":
        return to_mnist(img, (input_shape[1], input_shape[2]))
    raise ConversionError(f"no drawing recipe {recipe!r}.")


def frame_dict(frame: Frame) -> dict[str, float]:
    """The frame as JSON numbers (rounded to a tenth of a pixel)."""
    return {k: math.floor(v * 10 + 0.5) / 10 for k, v in vars(frame).items()}
