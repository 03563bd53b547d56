"""CIFAR-10 from the binary version of its archive, read as raw bytes (nothing is unpickled).

``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/`` with ``data_batch_1.bin`` ..
``data_batch_5.bin`` (10,000 records each), ``test_batch.bin`` and ``batches.meta.txt`` (the
10 class names, one a line). A record is 3,073 bytes: the label (0-9), then the 32x32 image's
1,024 red, 1,024 green and 1,024 blue values, rows first.

The batch files are read from ``data_dir`` or ``data_dir/cifar-10-batches-bin/``; when they are
missing, from ``data_dir/cifar-10-binary.tar.gz``, which ``download=True`` fetches first
(SHA-256 checked, ``download.py``). Extraction takes only the expected members, as regular
files, each no larger than ``MAX_BATCH_BYTES``, written atomically: no path from the archive
ever names a file (a member ``../x`` is refused), and a damaged archive leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from deltanet.data.dataset import Dataset, data_root, validate_arrays
from deltanet.data.download import CHUNK, download_files, replacing

ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
MEMBERS = (*TRAIN_FILES, TEST_FILE, META_FILE)
# The official archive (Krizhevsky's page, https://www.cs.toronto.edu/~kriz/cifar.html):
# 170,052,171 bytes, MD5 c32a1d4ab5d03f1284b67883e8d87530 (torchvision's value); SHA-256 as
# published by independent loaders (red-datasets, gomlx).
CIFAR10_SHA256 = {ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"}
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
MAX_DOWNLOAD_BYTES = 200 * 1024**2  # the archive is 162 MiB
RECORD = 1 + 3 * 32 * 32
MAX_BATCH_BYTES = 10_000 * RECORD  # each official batch is exactly this
CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def load_cifar10(data_dir: str | os.PathLike | None = None, *, download: bool = False) -> Dataset:
    """CIFAR-10: x ``(N, 3, 32, 32)`` float32 in [0, 1], y int64; 50,000 train / 10,000 test.

    Reads the batches from ``data_dir`` (default ``data_root() / "cifar10"``), extracting them
    from the archive there first if needed; ``download=True`` fetches a missing archive.
    Raises FileNotFoundError naming the missing files and the download flag, ValueError
    naming a damaged file (a size that is not whole records, a label above 9, a bad archive).
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else data_root() / "cifar10"
    folder = _batches_folder(directory)
    if folder is None:
        archive = directory / ARCHIVE
        if not archive.is_file() and not download:
            raise FileNotFoundError(
                f"CIFAR-10 files missing in {directory}: {', '.join(MEMBERS[:-1])} (in "
                f"{directory} or {directory / FOLDER}), or the archive {ARCHIVE}. Copy them "
                "there, or load with download=True to fetch the archive once (SHA-256 checked)."
            )
        if not archive.is_file():
            download_files(
                directory,
                [ARCHIVE],
                mirrors=CIFAR10_MIRRORS,
                checksums=CIFAR10_SHA256,
                max_bytes=MAX_DOWNLOAD_BYTES,
            )
        extract_cifar10(archive, directory / FOLDER)
        folder = directory / FOLDER
    x_train, y_train = _read_batches([folder / name for name in TRAIN_FILES])
    x_test, y_test = _read_batches([folder / TEST_FILE])
    return Dataset(
        name="cifar10",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=10,
        input_shape=(3, 32, 32),
        class_names=_class_names(folder / META_FILE),
    )


def _batches_folder(directory: Path) -> Path | None:
    for folder in (directory, directory / FOLDER):
        if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    return None


def read_batch(path: Path, *, max_bytes: int = MAX_BATCH_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 3, 32, 32) uint8, labels (n,) uint8)`` of one batch file; ValueError
    naming the file when its size is not a whole number of records or exceeds ``max_bytes``."""
    size = path.stat().st_size
    if size == 0 or size % RECORD:
        raise ValueError(
            f"{path}: truncated or damaged: {size} bytes is not a whole number of {RECORD}-byte "
            "records (1 label byte + 3072 pixel bytes)."
        )
    if size > max_bytes:
        raise ValueError(
            f"{path}: {size} bytes, more than a CIFAR-10 batch holds ({max_bytes // RECORD:,} "
            f"records, {max_bytes} bytes)."
        )
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0]


def _read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for path in paths:
        images, labels = read_batch(path)
        validate_arrays(images, labels, num_classes=10, where=str(path))
        xs.append(images)
        ys.append(labels)
    x = np.concatenate(xs).astype(np.float32) / np.float32(255)
    return x, np.concatenate(ys).astype(np.int64)


def _class_names(path: Path) -> list[str]:
    """The names in ``batches.meta.txt`` when it lists 10 plain names, else the official ones."""
    try:
        names = [n.strip() for n in path.read_text("ascii").splitlines() if n.strip()]
    except (OSError, UnicodeDecodeError):
        return list(CLASSES)
    return names if len(names) == 10 and all(len(n) <= 64 for n in names) else list(CLASSES)


def extract_cifar10(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract the batch files of ``archive`` into ``dest``, safely; returns their paths.

    Only the members ``cifar-10-batches-bin/<name>`` with a name of ``MEMBERS`` are read, as
    regular files of at most ``MAX_BATCH_BYTES``; others are skipped, and a member whose path
    leaves the archive's folder (absolute, ``..``) is refused. Each file is written to a
    temporary file and renamed. Raises ValueError naming the archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                target = _expected(archive, member)
                if target is not None:
                    written.append(_copy_member(tar, member, dest / target, archive))
        missing = [n for n in MEMBERS[:-1] if dest / n not in written]
        if missing:
            raise ValueError(f"{archive}: the archive lacks {', '.join(missing)}.")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        _remove(written)
        raise ValueError(f"{archive}: not a readable {ARCHIVE} archive ({err}).") from err
    except BaseException:
        _remove(written)  # a damaged archive leaves no batch behind
        raise
    return written


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _expected(archive: Path, member: tarfile.TarInfo) -> str | None:
    """The file name a member is extracted to, or None to skip it; ValueError if unsafe."""
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith("/") or ".." in parts:
        raise ValueError(f"{archive}: refused an unsafe member path {member.name!r}.")
    if len(parts) != 2 or parts[0] != FOLDER or parts[1] not in MEMBERS:
        return None
    if not member.isreg():
        raise ValueError(f"{archive}: member {member.name!r} is not a regular file.")
    if member.size > MAX_BATCH_BYTES:
        raise ValueError(
            f"{archive}: member {member.name!r} claims {member.size} bytes, more than a "
            f"CIFAR-10 batch ({MAX_BATCH_BYTES})."
        )
    return parts[1]


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, archive) -> Path:
    source = tar.extractfile(member)
    assert source is not None  # a regular file, checked by _expected
    with replacing(target) as out:
        left = member.size
        while left and (chunk := source.read(min(CHUNK, left))):
            out.write(chunk)
            left -= len(chunk)
        if left:
            raise ValueError(f"{archive}: member {member.name!r} is truncated.")
    return target
