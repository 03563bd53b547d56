"""Hostile and careless data files: labels, ``.npz`` archives, MNIST's IDX files.

Each case builds its file in its own temporary directory, then loads it through the API (in a
subprocess under the harness's memory cap when a regression could allocate gigabytes) and
through ``deltanet train`` in a subprocess, and ends in a clear error that names the file and
what is wrong with it, with nothing written, or in the documented behaviour.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from deltanet.data import MAX_CLASSES, DataNote, count_classes, load_dataset
from deltanet.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from deltanet.data.npy import read_npy
from deltanet.data.npz import load_npz
from tests.faults.harness import assert_clean_error, run_cli, run_python, snapshot

SEGMENT = 1 << 24  # 16 MiB of zeros, deflated once and repeated
ZIP_STORED, ZIP_DEFLATED = 0, 8


# --- crafting files ---------------------------------------------------------------------------
def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    f = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue()


def deflate_zeros(prefix: bytes, segments: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``prefix`` then ``segments`` x 16 MiB of zeros, built in
    milliseconds: after a full flush deflate starts afresh, so each segment's bytes are the
    same. Returns ``(stream, crc32, uncompressed size)``."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(SEGMENT)
    segment = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(segments):
        crc = zlib.crc32(zeros, crc)
    return head + segment * segments + tail, crc, len(prefix) + segments * SEGMENT


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip64 archive written by hand: ``(name, stored bytes, crc, size it declares, method)``
    per member, so that the directory can say whatever a test needs."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size, method in members:
        raw = name.encode()
        extra = struct.pack("<HHQQ", 1, 16, size, len(data))
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra))  # fmt: skip
        out += raw + extra + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21,
                               crc, 0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra), 0, 0, 0, 0,
                               offset)  # fmt: skip
        central += raw + extra
    start, n = len(out), len(members)
    out += central
    end64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), start)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), start, 0)
    path.write_bytes(bytes(out))
    return path


def stored(name: str, array: np.ndarray) -> tuple[str, bytes, int, int, int]:
    f = io.BytesIO()
    np.save(f, array)
    data = f.getvalue()
    return name, data, zlib.crc32(data), len(data), ZIP_STORED


def zip_bomb(path: Path, gib: int = 10, declared: int | None = None) -> Path:
    """An .npz whose ``x.npy`` inflates to ``gib`` GiB of zeros (a uint8 array of 256x256
    images whose header says so) from ~1 MB per GiB; ``declared``: the size its zip directory
    claims (default: the truth)."""
    segments = gib * 64
    header = npy_header((segments * 256, 1, 256, 256))
    data, crc, size = deflate_zeros(header, segments)
    members = [
        ("x.npy", data, crc, size if declared is None else declared, ZIP_DEFLATED),
        stored("y.npy", np.arange(10) % 2),
    ]
    return write_zip(path, members)


def api(tmp_path: Path, call: str, memory_mb: int = 1024) -> str:
    """Run ``call`` (loading from ``tmp_path``) under a memory cap; what it raised, as text."""
    code = f"""
        from deltanet.data import load_dataset
        from deltanet.data.mnist import load_mnist
        try:
            {call}
        except (ValueError, FileNotFoundError) as err:
            print(type(err).__name__, err)
        else:
            print("LOADED")
    """
    proc = run_python(code, cwd=tmp_path, memory_mb=memory_mb, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def train_fails(tmp_path: Path, data: str | Path, *fragments: str, extra: tuple = ()) -> str:
    """``deltanet train --data DATA`` under the memory cap: a clean error, nothing written."""
    before = snapshot(tmp_path)
    proc = run_cli("train", "--data", data, "--out", "out", "--quiet", *extra, cwd=tmp_path,
                   timeout=60)  # fmt: skip
    assert_clean_error(proc, *fragments)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
    assert not (tmp_path / "runs").exists()
    return proc.stderr


def images(n: int = 30, side: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, side, side)).astype(np.float32)


# --- labels ---------------------------------------------------------------------------------
def labelled(tmp_path: Path, y: np.ndarray, **more) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, x=images(len(y)), y=y, **more)
    return path


def stray(label: int) -> np.ndarray:
    y = np.arange(30) % 3
    y[7] = label
    return y


@pytest.mark.parametrize(
    "y, fragments",
    [
        (
            stray(999),
            ["leave 996 of the classes 0..999 without one (3..998)",
             "label 999 (1 example, first at index 7)", "Relabel them 0..3"],
        ),
        (
            stray(1_000_000),
            ["the labels make 1000001 classes, more than deltanet trains (1000)",
             "label 1000000 (1 example, first at index 7)"],
        ),
        (
            np.repeat([100, 200, 300], 10),
            ["298 of the classes 0..300 without one (0..99, 101..199, 201..299)",
             "label 100 (10 examples, first at index 0), label 200", "Relabel them 0..2"],
        ),
        (np.repeat([0, 1, 3], 10), ["classes 0..3 without one (2)", "label 3 (10 examples"]),
        (np.full(30, 4), ["training needs at least 2 classes", "the 30 labels of y is 4"]),
        (np.array([1e300] + [0, 1] * 14 + [1]), ["more than deltanet trains (1000)"]),
    ],
)  # fmt: skip
def test_labels_that_are_not_class_indices_are_refused(tmp_path, y, fragments):
    labelled(tmp_path, y)
    out = api(tmp_path, "load_dataset('d.npz')")  # a label 1e300 once made 1e300 class names
    for fragment in ["ValueError d.npz (y)", *fragments]:
        assert fragment in out
    train_fails(tmp_path, "d.npz", "d.npz", *fragments)


def test_test_labels_that_training_never_saw_are_refused(tmp_path):
    y_test = np.array([0, 1, 2, 2, 5])
    labelled(tmp_path, np.arange(30) % 3, x_test=images(5), y_test=y_test)
    fragments = ["d.npz (y, y_test)", "never occur in training", "label 5 (1 example, first at "
                 "index 4)"]  # fmt: skip
    with pytest.raises(ValueError, match="never occur in training"):
        load_npz(tmp_path / "d.npz")
    train_fails(tmp_path, "d.npz", *fragments)


def test_a_class_with_one_example_cannot_be_split_into_train_and_test(tmp_path):
    y = np.arange(31) % 3
    y[-1] = 3  # a fourth class, once
    labelled(tmp_path, y)
    train_fails(tmp_path, "d.npz", "d.npz", "class 3 has a single example", "x_test")


def test_class_names_may_declare_classes_without_examples_with_a_note(tmp_path):
    names = np.array(["a", "b", "c", "unused"])
    path = labelled(tmp_path, np.arange(30) % 3, class_names=names)
    with pytest.warns(DataNote, match=r"1 of the 4 classes of class_names .* \(3\)"):
        d = load_npz(path)
    assert d.num_classes == 4 and d.class_names == list(names)
    labelled(tmp_path, stray(7), class_names=names)
    train_fails(tmp_path, "d.npz", "labels go up to 7", "at least 8 strings", "Received 4 names")


def test_the_class_bound_is_the_documented_one():
    y = np.arange(MAX_CLASSES + 1)
    with pytest.raises(ValueError, match="1001 classes, more than deltanet trains"):
        count_classes(y, y, "w")
    assert count_classes(y[:-1], y[:-1], "w") == MAX_CLASSES


# --- (N, H, W) images without a channel axis ------------------------------------------------
def test_images_without_a_channel_axis_get_one_with_a_note(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3)
    with pytest.warns(DataNote, match=r"read as 30 grayscale 12x12 images, shape \(30, 1, 12, 12"):
        d = load_npz(tmp_path / "d.npz")
    assert d.input_shape == (1, 12, 12) and d.x_test.shape == (6, 1, 12, 12)
    assert d.x_train.dtype == np.float32 and d.x_train.max() <= 1.0
    proc = run_cli("train", "--data", "d.npz", "--epochs", 1, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "grayscale 12x12 images" in proc.stderr and "shape (1, 12, 12)" in proc.stdout


def test_sequences_with_more_steps_than_channels_stay_sequences(tmp_path):
    x = np.random.default_rng(0).random((30, 2, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3)
    assert load_npz(tmp_path / "d.npz").input_shape == (2, 16)


# --- .npz archives ----------------------------------------------------------------------------
def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    zip_bomb(tmp_path / "bomb.npz")
    assert (tmp_path / "bomb.npz").stat().st_size < 12 * 1024**2
    out = api(tmp_path, "load_dataset('bomb.npz')", memory_mb=512)
    assert "its arrays take 10.0 GiB uncompressed (x 10.0 GiB" in out
    assert "refused before decompressing" in out
    train_fails(tmp_path, "bomb.npz", "bomb.npz", "10.0 GiB", "refused before decompressing")


def test_a_zip_bomb_whose_directory_lies_is_cut_off(tmp_path):
    zip_bomb(tmp_path / "bomb.npz", gib=2, declared=1024**2)  # says 1 MiB, inflates to 2 GiB
    out = api(tmp_path, "load_dataset('bomb.npz')", memory_mb=512)
    assert "bomb.npz (array 'x'): its header declares an array of shape (32768, 1, 256, 256)" in out
    assert "(2.0 GiB), only 1023.9 KiB of data follow it" in out
    train_fails(tmp_path, "bomb.npz", "bomb.npz (array 'x')", "2.0 GiB")


def test_a_directory_claiming_more_than_deflate_can_produce_is_refused(tmp_path):
    name, data, crc, _, _ = stored("x.npy", np.zeros((3, 2)))
    write_zip(tmp_path / "d.npz", [(name, zlib.compress(data)[2:-4], crc, 10**9, 8)])
    out = api(tmp_path, "load_dataset('d.npz')")
    assert "declares 953.7 MiB uncompressed from" in out and "damaged or crafted" in out


def test_an_npy_header_claiming_238_gib_is_refused(tmp_path):
    huge = npy_header((32000, 1000, 1000), "<f8") + bytes(1024)
    members = [("x.npy", huge, zlib.crc32(huge), len(huge), 0), stored("y.npy", np.arange(4))]
    write_zip(tmp_path / "d.npz", members)
    out = api(tmp_path, "load_dataset('d.npz')", memory_mb=512)
    assert "shape (32000, 1000, 1000) and dtype float64 (238.4 GiB), only 1.0 KiB" in out
    train_fails(tmp_path, "d.npz", "238.4 GiB")


def test_honest_arrays_past_the_bound_are_refused_with_the_bound(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((50, 1, 8, 8), np.float32), y=np.arange(50) % 2)
    with pytest.raises(ValueError, match=r"more than deltanet loads \(1.0 KiB\)"):
        load_npz(tmp_path / "d.npz", max_bytes=1024)
    assert load_npz(tmp_path / "d.npz").x_train.shape == (40, 1, 8, 8)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\x80\x04random bytes" * 20, "not an .npz archive"),
        (b"PK\x03\x04" + bytes(200), "not a readable .npz archive"),
        (None, "not a readable .npz archive"),  # a real archive cut in half
    ],
)
def test_damaged_archives_are_refused(tmp_path, content, fragment):
    if content is None:
        np.savez(tmp_path / "whole.npz", x=images(), y=np.arange(30) % 3)
        whole = (tmp_path / "whole.npz").read_bytes()
        content = whole[: len(whole) // 2]
        (tmp_path / "whole.npz").unlink()
    (tmp_path / "d.npz").write_bytes(content)
    assert fragment in api(tmp_path, "load_dataset('d.npz')")
    train_fails(tmp_path, "d.npz", "d.npz", fragment)


def test_pickled_arrays_are_refused_without_numpys_advice(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4) % 2)
    stderr = train_fails(tmp_path, "d.npz", "holds object arrays, which need pickle",
                         "never unpickles")  # fmt: skip
    assert "allow_pickle" not in stderr


@pytest.mark.parametrize(
    "members, fragment",
    [
        ([("x", b"raw", 0, 3, 0)], "member 'x' is not one .npy array"),
        ([("x.npy", b"", 0, 0, 12)], "zip compression method 12 is not supported"),
    ],
)
def test_members_that_are_not_plain_npy_arrays_are_refused(tmp_path, members, fragment):
    write_zip(tmp_path / "d.npz", [(n, d, zlib.crc32(d), s, m) for n, d, _, s, m in members])
    assert fragment in api(tmp_path, "load_dataset('d.npz')")


def test_a_random_bytes_npy_is_not_offered_to_unpickling(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ValueError, match="not a NumPy .npy array") as err:
        read_npy(path, max_bytes=1024)
    assert "allow_pickle" not in str(err.value)


# --- MNIST's IDX files ----------------------------------------------------------------------
def idx(magic: int, dims: tuple[int, ...]) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def fake_mnist(directory: Path) -> Path:
    directory.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 20), ("t10k", 8)):
        pixels = rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()
        labels = (np.arange(n) % 10).astype(np.uint8).tobytes()
        (directory / f"{stem}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx(IMAGES_MAGIC, (n, 28, 28)) + pixels)
        )
        (directory / f"{stem}-labels-idx1-ubyte").write_bytes(idx(LABELS_MAGIC, (n,)) + labels)
    return directory


def test_an_idx_gz_claiming_four_million_images_is_refused_unread(tmp_path):
    d = fake_mnist(tmp_path / "m")
    pixels = np.random.default_rng(1).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    path = d / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx(IMAGES_MAGIC, (4_000_000, 28, 28)) + pixels, 1))
    out = api(tmp_path, "load_mnist('m')", memory_mb=512)
    assert "train-images-idx3-ubyte.gz: truncated: dims (4000000, 28, 28) need 3136000000" in out
    assert "gzip file holds at most" in out
    train_fails(tmp_path, "mnist", "dims (4000000, 28, 28)", extra=("--data-dir", "m"))


def test_an_idx_header_past_the_bound_is_refused_unread(tmp_path):
    d = fake_mnist(tmp_path / "m")
    path = d / "train-images-idx3-ubyte.gz"
    # 1.2 GB of zeros, 1.2 MB deflated: as much as the header claims, and past the bound
    data, crc, size = deflate_zeros(idx(IMAGES_MAGIC, (1_500_000, 28, 28)), 72)
    # a gzip member by hand: header, the deflate stream, CRC and size
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + data
                     + struct.pack("<II", crc, size & 0xFFFFFFFF))  # fmt: skip
    with pytest.raises(ValueError, match=r"need 1.1 GiB, more than deltanet reads .* \(1.0 GiB\)"):
        read_idx(path, IMAGES_MAGIC)


def test_an_idx_stream_longer_than_its_header_is_cut_off(tmp_path):
    path = tmp_path / "t.gz"
    data, crc, size = deflate_zeros(idx(LABELS_MAGIC, (10,)), 64)  # 1 GiB of zeros
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + data
                     + struct.pack("<II", crc, size & 0xFFFFFFFF))  # fmt: skip
    code = "from deltanet.data.mnist import read_idx\nread_idx('t.gz', 2049)"
    proc = run_python(code, cwd=tmp_path, memory_mb=512, timeout=60)
    assert "longer than its header says: dims (10,) need 10 data bytes, found more" in proc.stderr
    assert "MemoryError" not in proc.stderr


def test_a_good_mnist_still_loads(tmp_path):
    fake_mnist(tmp_path / "m")
    d = load_dataset("mnist", data_dir=tmp_path / "m")
    assert d.x_train.shape == (20, 1, 28, 28) and d.num_classes == 10
