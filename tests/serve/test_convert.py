"""A drawing -> the model's input, as the dataset was made (no server, no model)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

from deltanet.serve.convert import (
    ConversionError,
    decode_png,
    png_size,
    recipe_for,
    to_digits,
    to_mnist,
)
from tests.serve.conftest import draw_png


def _png(a: np.ndarray, mode: str = "L") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, "PNG")
    return buf.getvalue()


def test_digits_recipe_counts_the_on_pixels_of_each_4x4_block():
    """A 32x32 bitmap of the optdigits kind (all 32 rows, 20 columns, centred), drawn 10x
    larger, comes back as exactly its block counts / 16."""
    rng = np.random.default_rng(0)
    bitmap = np.zeros((32, 32), dtype=bool)
    bitmap[:, 6:26] = rng.random((32, 20)) < 0.4
    bitmap[[0, 31], 6] = bitmap[5, [6, 25]] = True  # the ink spans rows 0-31, columns 6-25
    big = np.kron(bitmap, np.ones((10, 10), dtype=bool)).astype(np.uint8) * 255
    x, frame = to_digits(decode_png(_png(big)))
    expected = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)) / 16
    assert x.shape == (1, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], expected)
    assert (frame.left, frame.top, frame.width, frame.height) == (0, 0, 320, 320)


def test_digits_recipe_fills_the_height_and_narrows_wide_drawings():
    wide = np.zeros((100, 300), dtype=np.uint8)
    wide[40:60, 20:280] = 255  # a fat dash, 13 times wider than tall
    x = to_digits(decode_png(_png(wide)))[0][0]
    assert (x.sum(axis=1) > 0).all(), "every row of the 8x8 is inked, as in every digit"
    assert (x[:, [0, 7]] == 0).all() and x.max() == 1


def _nearest_class(x: np.ndarray) -> int:
    from sklearn.datasets import load_digits

    d = load_digits()
    means = np.stack([d.images[d.target == k].mean(axis=0) / 16 for k in range(10)])
    cos = (means * x).sum(axis=(1, 2)) / np.linalg.norm(means, axis=(1, 2)) / np.linalg.norm(x)
    return int(np.argmax(cos))


@pytest.mark.parametrize("digit", ["1", "0"])
def test_the_pages_strokes_look_like_the_digits_they_are(digit):
    """The converted strokes are nearest (cosine) to the mean 8x8 image of their own class."""
    x, _ = to_digits(decode_png(draw_png(digit)))
    assert _nearest_class(x[0]) == int(digit)


def test_mnist_recipe_fits_20x20_and_centres_the_mass():
    img = np.zeros((300, 200), dtype=np.float32)
    img[20:280, 30:60] = 1  # a tall bar, off centre
    img[250:280, 30:180] = 1  # and a foot: the centre of mass is not the box's centre
    x, frame = to_mnist(img)
    field = x[0]
    assert field.shape == (28, 28) and 0 <= field.min() and field.max() <= 1
    rows, cols = np.flatnonzero(field.sum(1)), np.flatnonzero(field.sum(0))
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 20
    ys, xs = np.indices(field.shape)
    cy, cx = (ys * field).sum() / field.sum(), (xs * field).sum() / field.sum()
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
    assert frame.height == pytest.approx(260 / 20 * 28)  # 13 drawing pixels per field pixel


def test_decode_inverts_dark_ink_and_reads_transparency_as_ground():
    paper = np.full((50, 50), 255, dtype=np.uint8)
    paper[10:40, 24:27] = 0  # black ink on white
    grey = decode_png(_png(paper))
    assert grey[20, 25] == 1 and grey[0, 0] == 0
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)  # a canvas with nothing but the strokes
    rgba[10:40, 24:27] = (255, 255, 255, 255)
    grey = decode_png(_png(rgba, "RGBA"))
    assert grey[20, 25] == 1 and grey[0, 0] == 0


def test_decode_refuses_what_is_not_a_readable_png_of_a_sane_size():
    with pytest.raises(ConversionError, match="not a PNG"):
        decode_png(b"GIF89a" + bytes(40))
    with pytest.raises(ConversionError, match="not a readable PNG"):
        decode_png(draw_png("1")[:60])  # cut short
    header = struct.pack(">II5B", 100_000, 100_000, 8, 0, 0, 0, 0)
    ihdr = (
        struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )
    bomb = b"\x89PNG\r\n\x1a\n" + ihdr
    assert png_size(bomb) == (100_000, 100_000)
    with pytest.raises(ConversionError, match="100000x100000"):
        decode_png(bomb)  # refused from the header: nothing is decoded
    with pytest.raises(ConversionError, match="no drawing"):
        to_digits(np.zeros((40, 40), dtype=np.float32))


def test_recipe_by_data_and_shape():
    assert recipe_for("digits", (1, 8, 8)) == "digits"
    assert recipe_for("mnist", (1, 28, 28)) == "mnist"
    assert recipe_for("my.npz", (1, 16, 16)) == "mnist"
    assert recipe_for("mnist1d", (1, 40)) is None
    assert recipe_for("cifar.npz", (3, 32, 32)) is None
