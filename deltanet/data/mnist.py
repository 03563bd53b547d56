"""MNIST and Fashion-MNIST from their four IDX files, read from a directory or downloaded once
with SHA-256 checks (``download.py``).

IDX format (big-endian): a 4-byte magic number ``0x0000 TT NN`` (``TT = 0x08`` unsigned bytes,
``NN`` the number of dims: 2051 for the ``(N, 28, 28)`` images, 2049 for the ``(N,)`` labels),
then ``NN`` uint32 dims, then the data. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np

from deltanet.data.dataset import Dataset, data_root, validate_arrays
from deltanet.data.download import download_files
from deltanet.data.npy import DEFLATE_MAX_RATIO, format_bytes

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the official gzip files (the same bytes on every mirror below).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
# Fashion-MNIST's files (the same names as MNIST's): SHA-256 of the official gzip files, as
# published by independent loaders (Fashion-MNIST's README and torchvision publish MD5 only:
# 8d4fb7e6c68d591d4c3dfef9ec88bf0d, 25c81989df183df01b3e8a0aad5dffbe,
# bef4ecab320f06d8554ea6380940ec79, bb300cfdad3c16e7a12a480ee83cd310).
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"
    ),
    "train-labels-idx1-ubyte.gz": (
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"
    ),
}
FASHION_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # plain http: the hash guards
)
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
# The largest official file is 9.9 MB; a response past this is not MNIST.
MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024
# The most data one IDX file may hold: 1 GiB, 21x MNIST's training images (EMNIST's largest
# is 0.55 GB). A header claiming more is refused before anything is decompressed.
MAX_IDX_BYTES = 1024**3


def _open(path: Path) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb"))


def read_idx(path: str | os.PathLike, magic: int, *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """The uint8 array of an IDX file (plain or ``.gz``); ValueError naming the file if bad.

    The header's dims are checked before the data is read or decompressed: their product must
    be at most ``max_bytes``, and at most what the file can hold (its size; for ``.gz``, the
    most that deflate can expand its size to); a stream that runs on past them is cut off.
    """
    path = Path(path)
    ndim = magic & 0xFF
    try:
        with _open(path) as f:
            head = f.read(4 + 4 * ndim)
            dims = _idx_dims(path, head, magic)
            expected = math.prod(dims)
            _check_idx_size(path, dims, expected, max_bytes)
            raw = f.read(expected + 1)  # one more: a longer stream is an error, read no further
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a valid gzip file ({e}).") from e
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        found = f"{len(raw)}" if len(raw) < expected else f"more than {expected}"
        raise ValueError(f"{path}: {state}: dims {dims} need {expected} data bytes, found {found}.")
    return np.frombuffer(raw, np.uint8).reshape(dims)


def _idx_dims(path: Path, head: bytes, magic: int) -> tuple[int, ...]:
    ndim = magic & 0xFF
    if len(head) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({len(head)} bytes).")
    found = int.from_bytes(head[:4], "big")
    if found != magic:
        raise ValueError(
            f"{path}: wrong IDX magic number {found}, expected {magic} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'} of unsigned bytes)."
        )
    return tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def _check_idx_size(path: Path, dims: tuple[int, ...], expected: int, max_bytes: int) -> None:
    size = path.stat().st_size
    header = 4 + 4 * len(dims)
    if path.name.endswith(".gz"):
        most, found = size * DEFLATE_MAX_RATIO, f"a {size}-byte gzip file holds at most"
    else:
        most, found = size - header, "found"
    if expected > most:
        raise ValueError(
            f"{path}: truncated: dims {dims} need {expected} data bytes, {found} {most}."
        )
    if expected > max_bytes:
        raise ValueError(
            f"{path}: dims {dims} need {format_bytes(expected)}, more than deltanet reads from "
            f"an IDX file ({format_bytes(max_bytes)})."
        )


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_split(directory: Path, images_stem: str, labels_stem: str):
    images_path, labels_path = _find(directory, images_stem), _find(directory, labels_stem)
    assert images_path is not None and labels_path is not None  # load_mnist checked both
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels: they must match."
        )
    validate_arrays(images, labels, num_classes=10, where=str(labels_path))
    x = images[:, None].astype(np.float32) / np.float32(255)
    return x, labels.astype(np.int64)


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = False) -> Dataset:
    """MNIST: x ``(N, 1, 28, 28)`` float32 in [0, 1], y int64; 60,000 train / 10,000 test.

    Reads the four IDX files (each plain or ``.gz``) from ``data_dir`` (default
    ``data_root() / "mnist"``); with ``download=True`` missing files are downloaded there first.
    Raises FileNotFoundError naming the missing files, ValueError naming a damaged one.
    """
    return load_idx_dataset(
        IdxSource("mnist", "MNIST", MNIST_SHA256, MNIST_MIRRORS, [str(d) for d in range(10)]),
        data_dir,
        download=download,
    )


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, *, download: bool = False
) -> Dataset:
    """Fashion-MNIST (Zalando): MNIST's format and sizes, 10 classes of clothing.

    x ``(N, 1, 28, 28)`` float32 in [0, 1], y int64; 60,000 train / 10,000 test, read from
    ``data_dir`` (default ``data_root() / "fashion_mnist"``); raises as ``load_mnist``.
    """
    source = IdxSource(
        "fashion_mnist", "Fashion-MNIST", FASHION_SHA256, FASHION_MIRRORS, FASHION_CLASSES
    )
    return load_idx_dataset(source, data_dir, download=download)


@dataclass(frozen=True)
class IdxSource:
    """A dataset of MNIST's four IDX files: its name, title, checksums, mirrors, classes."""

    name: str
    title: str
    sha256: Mapping[str, str]
    mirrors: Sequence[str]
    class_names: list[str]


def load_idx_dataset(
    source: IdxSource, data_dir: str | os.PathLike | None, *, download: bool = False
) -> Dataset:
    """The ``Dataset`` of ``source``'s four IDX files in ``data_dir`` (default
    ``data_root() / source.name``), downloading the missing ones first with ``download``."""
    directory = Path(data_dir).expanduser() if data_dir is not None else data_root() / source.name
    stems = [stem for pair in SPLITS.values() for stem in pair]
    missing = [stem for stem in stems if _find(directory, stem) is None]
    if missing and not download:
        raise FileNotFoundError(
            f"{source.title} files missing in {directory}: {', '.join(missing)} (plain or .gz). "
            "Copy the four IDX files there, or load with download=True to fetch them once "
            "(SHA-256 checked)."
        )
    if missing:
        download_files(
            directory,
            [stem + ".gz" for stem in missing],
            mirrors=source.mirrors,
            checksums=source.sha256,
            max_bytes=MAX_DOWNLOAD_BYTES,
        )
    x_train, y_train = _read_split(directory, *SPLITS["train"])
    x_test, y_test = _read_split(directory, *SPLITS["test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{directory}: train images are {x_train.shape[2:]} but test images are "
            f"{x_test.shape[2:]}."
        )
    return Dataset(
        name=source.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=10,
        input_shape=x_train.shape[1:],
        class_names=list(source.class_names),
    )


def download_mnist(
    directory: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    checksums: Mapping[str, str] | None = None,
    opener: Callable | None = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> list[Path]:
    """Download the MNIST ``.gz`` files missing in ``directory``, trying each mirror in turn.

    A file appears only once its SHA-256 matches (``download.download_files``): a failed or
    mismatching download leaves nothing behind. ``checksums`` maps file names to SHA-256
    (default ``MNIST_SHA256``); ``opener(url, timeout=...)`` defaults to
    ``urllib.request.urlopen``. Returns the paths.
    """
    checksums = MNIST_SHA256 if checksums is None else checksums
    return download_files(
        directory,
        list(checksums) if names is None else names,
        mirrors=mirrors,
        checksums=checksums,
        max_bytes=MAX_DOWNLOAD_BYTES,
        opener=opener,
        timeout=timeout,
        verbose=verbose,
    )
