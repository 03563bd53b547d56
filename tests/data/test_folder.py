"""Image folders: layout, decoding, the memory-mapped cache, unreadable files, resizing."""

from __future__ import annotations

import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from deltanet.data import DataNote, load_dataset
from deltanet.data.folder import load_image_folder
from deltanet.data.images import (
    MAX_IMAGE_PIXELS,
    BadImage,
    decode_image,
    parse_image_size,
    resize_images,
)

# The note every first decode prints (the CLI shows it as "deltanet: note: ...").
pytestmark = pytest.mark.filterwarnings("ignore:decoding the:deltanet.data.dataset.DataNote")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test caches under its own temporary data root."""
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path / "cache"))


def _png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def make_folder(root, classes=("cat", "dog", "fox"), n=5, size=(12, 10), rgb=False, seed=0):
    """``root/<class>/<i>.png`` (and a .jpg per class): class c is brightest in channel c."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        for i in range(n):
            shape = (*size, 3) if rgb else size
            img = rng.integers(0, 60, size=shape, dtype=np.uint8) + np.uint8(60 * c)
            _png(root / name / f"{i}.png", img)
        img = np.full((*size, 3), 40 * c, np.uint8)
        Image.fromarray(img if rgb else img[..., 0]).save(root / name / "extra.jpg", quality=95)
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_folder_layout_split_shapes_and_class_names(tmp_path):
    root = make_folder(tmp_path / "pets")
    d = load_dataset(root)
    assert d.class_names == ["cat", "dog", "fox"] and d.num_classes == 3
    assert d.input_shape == (1, 12, 10)  # gray: every image is; the first image's size
    assert len(d.y_train) + len(d.y_test) == 18 and len(d.y_test) == 4  # ceil(20% of 18)
    assert isinstance(d.x_train, np.memmap) and d.x_train.dtype == np.float32
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert sorted(np.bincount(d.y_train)) == [4, 5, 5]
    again = load_dataset(str(root))  # the cache: same arrays, nothing decoded again
    np.testing.assert_array_equal(again.x_test, d.x_test)
    np.testing.assert_array_equal(again.y_train, d.y_train)


def test_folder_size_mode_and_the_cache_key(tmp_path):
    root = make_folder(tmp_path / "pets", rgb=True)
    d = load_dataset(root, image_size="8x6")
    assert d.input_shape == (3, 8, 6)
    g = load_dataset(root, image_size=7, image_mode="gray")
    assert g.input_shape == (1, 7, 7)
    cached = sorted(os.listdir(tmp_path / "cache" / "images"))
    assert len(cached) == 2 and not [n for n in cached if n.startswith(".")]
    _png(root / "cat" / "new.png", np.zeros((12, 10, 3), np.uint8))  # an edited folder
    assert len(load_dataset(root, image_size=7, image_mode="gray").y_train) > len(g.y_train)


def test_folder_pixels_are_the_decoded_images(tmp_path):
    root = tmp_path / "two"
    a = _png(root / "a" / "0.png", np.full((4, 4), 255, np.uint8))
    _png(root / "a" / "1.png", np.full((4, 4), 255, np.uint8))
    _png(root / "b" / "0.png", np.zeros((4, 4, 3), np.uint8))
    _png(root / "b" / "1.png", np.zeros((4, 4, 3), np.uint8))
    d = load_image_folder(root)
    assert d.input_shape == (3, 4, 4)  # one RGB image: all become RGB
    x = np.concatenate([d.x_train, d.x_test])
    y = np.concatenate([d.y_train, d.y_test])
    assert np.all(x[y == 0] == 1.0) and np.all(x[y == 1] == 0.0)
    assert decode_image(a, (2, 2), "gray").shape == (1, 2, 2)


def test_train_and_test_subfolders(tmp_path):
    make_folder(tmp_path / "d" / "train", n=4)
    make_folder(tmp_path / "d" / "test", classes=("dog", "fox"), n=2)
    d = load_dataset(tmp_path / "d")
    assert d.class_names == ["cat", "dog", "fox"]
    assert len(d.y_train) == 15 and len(d.y_test) == 6
    assert set(d.y_test.tolist()) == {1, 2}  # test labels use the training classes' indices
    make_folder(tmp_path / "d" / "test", classes=("owl",), n=1)
    with pytest.raises(ValueError, match=r"test holds classes that .*train lacks: owl"):
        load_dataset(tmp_path / "d")


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b""), "an empty file"),
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "not a readable image"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64)), "not a readable image"),
        (lambda p: p.write_bytes(b"GIF89a not really"), "not a readable image"),
    ],
    ids=["zero-bytes", "truncated", "corrupt", "not-an-image"],
)
def test_unreadable_images_error_or_skip(tmp_path, damage, reason):
    root = make_folder(tmp_path / "pets", n=6, size=(16, 16))
    bad = root / "dog" / "3.png"
    damage(bad)
    with pytest.raises(BadImage, match=f"1 unreadable image file: {bad}: {reason}.*--bad-images"):
        load_dataset(root)
    assert not (tmp_path / "cache" / "images").exists() or not any(
        (tmp_path / "cache" / "images").iterdir()
    )
    with pytest.warns(DataNote, match=f"left out 1 unreadable image file.*{bad}"):
        d = load_dataset(root, bad_images="skip")
    assert len(d.y_train) + len(d.y_test) == 20
    with pytest.raises(BadImage, match=str(bad)):  # the cache remembers what it left out
        load_dataset(root)


def _bomb_png(path, width, height):
    """A PNG header claiming ``width x height`` pixels, with a tiny (invalid) body."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    root = make_folder(tmp_path / "pets", n=6)
    bomb = root / "cat" / "huge.png"
    _bomb_png(bomb, 100_000, 100_000)
    with pytest.raises(BadImage, match=f"{bomb}: .*(too large|100000x100000 pixels)"):
        load_dataset(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataNote)
        d = load_dataset(root, bad_images="skip")
    assert len(d.y_train) + len(d.y_test) == 21
    _bomb_png(bomb, 9000, 9000)  # above our bound, below Pillow's own
    assert 9000 * 9000 > MAX_IMAGE_PIXELS
    with pytest.raises(BadImage, match="9000x9000 pixels"):
        load_dataset(root)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda r: r.mkdir(), "no class folders"),
        (lambda r: make_folder(r, classes=("only",)), "only the class folder 'only'"),
        (lambda r: (make_folder(r), (r / "empty").mkdir()), "empty: an empty class folder"),
        (lambda r: (make_folder(r), (r / "cat" / "0.png").rename(r / "x.png")), None),
    ],
)
def test_folder_layout_errors_name_the_folder(tmp_path, build, match):
    root = tmp_path / "data"
    build(root)
    if match is None:  # a stray file at the top is ignored
        assert load_dataset(root).num_classes == 3
        return
    with pytest.raises(ValueError, match=match) as err:
        load_dataset(root)
    assert str(root) in str(err.value)


def test_folder_option_errors(tmp_path):
    root = make_folder(tmp_path / "p")
    with pytest.raises(ValueError, match="bad_images must be 'error' or 'skip'"):
        load_dataset(root, bad_images="ignore")
    with pytest.raises(ValueError, match="image_mode must be 'gray' or 'rgb'"):
        load_dataset(root, image_mode="cmyk")
    with pytest.raises(ValueError, match=r"image_size must be .*Received: '0x3'"):
        load_dataset(root, image_size="0x3")
    with pytest.raises(FileNotFoundError, match="No image folder at"):
        load_image_folder(tmp_path / "missing")


def test_parse_image_size():
    assert parse_image_size(28) == (28, 28) and parse_image_size("28x32") == (28, 32)
    assert parse_image_size((4, 5)) == (4, 5) and parse_image_size(None) is None
    for bad in ("a", "1x2x3", -1, True, "100000x100000"):
        with pytest.raises(ValueError, match="image_size"):
            parse_image_size(bad)


# --- image_size for the built-in datasets ------------------------------------------------------
@pytest.mark.parametrize(
    "shape, size", [((8, 8), (28, 28)), ((32, 32), (28, 28)), ((9, 7), (4, 5))]
)
def test_resize_images_is_pillows_bilinear(shape, size):
    x = np.random.default_rng(0).random((3, 2, *shape), dtype=np.float32)
    y = resize_images(x, size)
    for n in range(3):
        for c in range(2):
            img = Image.fromarray(x[n, c], "F").resize(size[::-1], Image.Resampling.BILINEAR)
            np.testing.assert_allclose(y[n, c], np.asarray(img), atol=1e-6)


def test_digits_upsampled_to_28():
    d = load_dataset("digits", image_size=28)
    assert d.input_shape == (1, 28, 28) and d.x_train.shape == (1437, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    with pytest.raises(ValueError, match=r"image_size resizes images.*'volumes'"):
        load_dataset("volumes", image_size=28)
    with pytest.raises(ValueError, match="image_mode applies to folders"):
        load_dataset("digits", image_mode="rgb")


def test_a_damaged_cache_is_decoded_again(tmp_path):
    root = make_folder(tmp_path / "pets")
    d = load_dataset(root)
    x, y = np.array(d.x_train), np.array(d.y_test)  # in memory: the mapped file is cut below
    del d
    (cache,) = (tmp_path / "cache" / "images").iterdir()
    with open(cache / "x_train.f32", "r+b") as f:
        f.truncate(100)
    np.testing.assert_array_equal(load_dataset(root).x_train, x)
    (cache / "y_test.npy").unlink()
    np.testing.assert_array_equal(load_dataset(root).y_test, y)
