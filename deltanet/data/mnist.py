"""MNIST from its four IDX files, read from a directory or downloaded once with SHA-256 checks.

IDX format (big-endian): a 4-byte magic number ``0x0000 TT NN`` (``TT = 0x08`` unsigned bytes,
``NN`` the number of dims: 2051 for the ``(N, 28, 28)`` images, 2049 for the ``(N,)`` labels),
then ``NN`` uint32 dims, then the data. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import math
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, cast

import numpy as np

from deltanet.data.dataset import Dataset, data_root, validate_arrays
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
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else data_root() / "mnist"
    stems = [stem for pair in SPLITS.values() for stem in pair]
    missing = [stem for stem in stems if _find(directory, stem) is None]
    if missing and not download:
        raise FileNotFoundError(
            f"MNIST files missing in {directory}: {', '.join(missing)} (plain or .gz). "
            "Copy the four IDX files there, or load with download=True to fetch them once "
            "(SHA-256 checked)."
        )
    if missing:
        download_mnist(directory, names=[stem + ".gz" for stem in missing])
    x_train, y_train = _read_split(directory, *SPLITS["train"])
    x_test, y_test = _read_split(directory, *SPLITS["test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{directory}: train images are {x_train.shape[2:]} but test images are "
            f"{x_test.shape[2:]}."
        )
    return Dataset(
        name="mnist",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=10,
        input_shape=x_train.shape[1:],
        class_names=[str(d) for d in range(10)],
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

    A file appears only once its SHA-256 matches: it is written to a temporary file in the same
    directory and renamed; a failed or mismatching download leaves nothing behind.
    ``checksums`` maps file names to SHA-256 (default ``MNIST_SHA256``);
    ``opener(url, timeout=...)`` defaults to ``urllib.request.urlopen``. Returns the paths.
    """
    checksums = MNIST_SHA256 if checksums is None else checksums
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    opener = opener or urllib.request.urlopen
    paths = []
    for name in names if names is not None else list(checksums):
        dest = directory / name
        if not dest.is_file():
            _download_one(name, dest, mirrors, checksums[name], opener, timeout, verbose)
        paths.append(dest)
    return paths


def _download_one(name, dest, mirrors, sha256, opener, timeout, verbose) -> None:
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        if verbose:
            print(f"Downloading {url} -> {dest}", file=sys.stderr)
        try:
            _fetch(url, dest, sha256, opener, timeout)
            return
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"{url}: {e}")
    raise OSError(f"Could not download {name} into {dest.parent}. Tried: " + "; ".join(errors))


def _fetch(url: str, dest: Path, sha256: str, opener: Callable, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, opener(url, timeout=timeout) as response:
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"response larger than {MAX_DOWNLOAD_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ValueError(f"SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
