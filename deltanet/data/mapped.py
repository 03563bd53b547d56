"""Memory-mapped datasets in bounded memory: statistics streamed over chunks of rows, and
split or standardised copies written chunk by chunk into memory-mapped files.

An image folder (``folder.py``) is decoded once into float32 ``np.memmap`` arrays. What the
in-memory path does with a dataset would copy such an array whole: fancy indexing
(``train_val_split``'s ``x[keep]``), ``Standardizer.fit`` (float64 temporaries of the whole
array) and ``Standardizer.transform`` (a result of the whole array's size). The helpers here
touch ``CHUNK_BYTES`` of rows at a time instead, and write what they make to disk, so the CLI's
``train``, ``evaluate`` and ``plot`` use memory independent of the folder's size; ``fit``,
``evaluate`` and ``predict`` then read those files a batch at a time (``pipeline.batches``
indexes per batch, and the input checks test finiteness a chunk at a time).

The files (``<hash>.f32`` etc., raw arrays of a known shape) go to ``derived/`` in the folder
of the array they come from (an image folder's cache, ``data_root() / "images" / <key>``),
named by a hash of that file (path, size, modification time), the part of it used, the rows
taken, the standardizer's statistics and the dtype. Each is written under a temporary name and
renamed when complete, so an interrupted run leaves no half file, and a later run with the same
split and standardizer reuses it (``deltanet evaluate`` reads the test set that ``deltanet
train`` standardised). The least recently used beyond ``KEEP_DERIVED`` are removed, as are
temporary files a killed run left for a day. Disk: one run's files (training, validation and
test sets) take about as much again as the decoded cache, and up to ``KEEP_DERIVED`` files,
two runs' worth, are kept (the space is checked before writing). Where that folder is not
writable the file is written to the system's temporary directory (with a note: where that is
a RAM disk, the copy takes memory) and deleted at once: the mapping keeps it until the process
ends (POSIX), or it is removed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from deltanet.data.dataset import DataNote, chunk_rows, split_indices
from deltanet.data.pipeline import Standardizer

# Rows read per step: a chunk and its float64 temporaries stay within a few times this.
CHUNK_BYTES = 4 * 1024**2
# Derived files kept per source folder (a run writes up to 3: training, validation and test).
KEEP_DERIVED = 6
DERIVED_DIR = "derived"
STALE_TMP_SECONDS = 24 * 3600  # a temporary file this old belongs to a run that was killed
_VERSION = 1  # part of every file's name: a change of format makes new names

Pair = tuple[np.ndarray, np.ndarray]


def is_mapped(x: object) -> bool:
    """Whether ``x`` is a memory-mapped array backed by a file (an ``np.memmap`` or a slice of
    one; fancy indexing returns a plain in-memory array, which is not)."""
    return isinstance(x, np.memmap) and getattr(x, "filename", None) is not None


def _spans(n: int, step: int) -> Iterator[slice]:
    return (slice(i, min(i + step, n)) for i in range(0, n, step))


def _block(x: np.ndarray, rows: np.ndarray | None, span: slice) -> np.ndarray:
    """Rows ``span`` of ``x`` (or of ``x[rows]``) as an in-memory array of one chunk."""
    return np.asarray(x[span] if rows is None else x[rows[span]])


# --- statistics -------------------------------------------------------------------------------
def fit_standardizer(
    x: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    per_feature: bool = False,
    eps: float = 1e-8,
    chunk_bytes: int = CHUNK_BYTES,
) -> Standardizer:
    """``Standardizer.fit(x[rows], per_feature=..., eps=...)`` a chunk of rows at a time.

    Two passes with float64 accumulators, as NumPy's ``mean`` and ``std`` do: the sums give
    the mean, then the squared deviations from it give the variance. NumPy sums each whole
    axis pairwise in one go, these sums add chunk by chunk, so the statistics can differ from
    the in-memory fit in the last bits (relative differences of order 1e-15 to 1e-13 for image
    data), and the standardised values then by about one float32 rounding at most.
    ``rows``: the example indices to fit on (sorted reads best from disk); None for all.
    """
    if x.ndim < 2:
        raise ValueError(f"Standardizer.fit needs x of shape (N, ...). Received {x.shape}.")
    n = len(x) if rows is None else len(rows)
    if n == 0:
        raise ValueError("Standardizer.fit needs at least one example. Received none.")
    axes = (0,) if per_feature else (0, *range(2, x.ndim))
    count = n * int(np.prod([x.shape[a] for a in axes[1:]], dtype=np.int64))
    step = chunk_rows(x, chunk_bytes)
    total = np.zeros((1, *x.shape[1:]) if per_feature else _channel_shape(x))
    for span in _spans(n, step):
        total += _block(x, rows, span).sum(axis=axes, dtype=np.float64, keepdims=True)
    mean = total / count
    squares = np.zeros_like(total)
    for span in _spans(n, step):
        deviation = _block(x, rows, span) - mean  # float64, one chunk
        np.square(deviation, out=deviation)
        squares += deviation.sum(axis=axes, keepdims=True)
    std = np.sqrt(squares / count)
    # A constant channel (e.g. an always-black border pixel) is shifted but not scaled.
    return Standardizer(mean[0], np.where(std[0] < eps, 1.0, std[0]))


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """``(1, C, 1, ...)``: the shape of per-channel sums with ``keepdims``."""
    return (1, x.shape[1], *(1,) * (x.ndim - 2))


# --- derived files ----------------------------------------------------------------------------
def mapped_copy(
    x: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    standardizer: Standardizer | None = None,
    dtype: np.dtype | type | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> np.ndarray:
    """``standardizer.transform(x[rows]).astype(dtype)`` as a read-only ``np.memmap``, written
    chunk by chunk into a file next to ``x``'s (see the module's docstring), or read from it
    when an earlier run wrote it. ``x`` must be memory-mapped (``is_mapped``).

    The values are those of the in-memory expression (the same elementwise arithmetic, row
    by row); ``dtype`` defaults to the transform's (``x``'s float dtype, else float32). With
    nothing to do (no rows, no standardizer, the same dtype) ``x`` itself is returned.
    """
    if not (isinstance(x, np.memmap) and is_mapped(x)):  # isinstance: for the type checker
        raise TypeError(f"mapped_copy needs a memory-mapped array. Received: {type(x).__name__}.")
    base = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    out_dtype = np.dtype(dtype) if dtype is not None else base
    if rows is None and standardizer is None and out_dtype == x.dtype:
        return x
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
    shape = (len(x) if rows is None else len(rows), *x.shape[1:])
    if shape[0] == 0:  # np.memmap cannot map an empty file
        return np.zeros(shape, out_dtype)
    folder = Path(str(x.filename)).parent / DERIVED_DIR
    path = folder / f"{_key(x, rows, standardizer, out_dtype)}.f{out_dtype.itemsize * 8}"
    with contextlib.suppress(OSError):  # a missing or damaged file is written anew
        if path.stat().st_size == int(np.prod(shape)) * out_dtype.itemsize:
            mapped = np.memmap(path, out_dtype, "r", shape=shape)
            with contextlib.suppress(OSError):  # a read-only cache: nothing to mark
                os.utime(path)  # recently used: kept when older files are pruned
            return mapped
    try:
        folder.mkdir(exist_ok=True)
        _write(path, x, rows, standardizer, out_dtype, shape, chunk_bytes)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # A cache that is not ours to write (shared, read-only): a file of this process only.
        warnings.warn(
            f"cannot write to {folder} ({err.strerror}): the standardised copy of the data "
            f"goes to {tempfile.gettempdir()} for this run only",
            DataNote,
            stacklevel=2,
        )
        return _write_private(x, rows, standardizer, out_dtype, shape, chunk_bytes)
    _prune(folder, keep=path)
    return np.memmap(path, out_dtype, "r", shape=shape)


def _key(
    x: np.memmap, rows: np.ndarray | None, standardizer: Standardizer | None, dtype: np.dtype
) -> str:
    """What the derived file's values depend on, hashed: the source file (path, size,
    modification time), the part of it that ``x`` views, the rows, the statistics, the dtype."""
    filename = os.path.abspath(str(x.filename))
    st = os.stat(filename)
    root: np.ndarray = x
    while isinstance(root.base, np.ndarray):  # the memmap that owns the mapping
        root = root.base
    start = int(getattr(root, "offset", 0)) + x.ctypes.data - root.ctypes.data
    view = (filename, st.st_size, st.st_mtime_ns, start, x.shape, x.strides, x.dtype.str)
    digest = hashlib.sha256(repr((_VERSION, view, dtype.str)).encode())
    digest.update(b"all" if rows is None else rows.tobytes())
    if standardizer is not None:
        for a in (standardizer.mean, standardizer.std):
            digest.update(repr(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:32]


def _fill_file(name: str, x, rows, standardizer, dtype: np.dtype, shape, chunk_bytes: int) -> None:
    """The file ``name`` (existing, empty) filled with ``transform(x[rows[i]])`` for every i, a
    chunk of rows at a time, and flushed."""
    out = np.memmap(name, dtype, "w+", shape=shape)
    for span in _spans(len(out), chunk_rows(x, chunk_bytes)):
        block = _block(x, rows, span)
        out[span] = block if standardizer is None else standardizer.transform(block)
    out.flush()


def _write(path: Path, x, rows, standardizer, dtype: np.dtype, shape, chunk_bytes: int) -> None:
    """The file at ``path``, written under a temporary name and renamed when complete (two
    processes writing it at once each rename a whole file of the same values)."""
    _check_disk(path.parent, int(np.prod(shape)) * dtype.itemsize)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _fill_file(tmp, x, rows, standardizer, dtype, shape, chunk_bytes)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _write_private(x, rows, standardizer, dtype: np.dtype, shape, chunk_bytes: int) -> np.memmap:
    """The values in a file of the system's temporary directory that only this process uses:
    unlinked once mapped (POSIX keeps it until the mapping goes), else removed at exit."""
    _check_disk(Path(tempfile.gettempdir()), int(np.prod(shape)) * dtype.itemsize)
    fd, name = tempfile.mkstemp(prefix="deltanet-", suffix=".tmp")
    os.close(fd)
    try:
        _fill_file(name, x, rows, standardizer, dtype, shape, chunk_bytes)
        mapped = np.memmap(name, dtype, "r", shape=shape)
    except BaseException:
        os.remove(name)
        raise
    try:
        os.remove(name)
    except OSError:  # a system that cannot remove a mapped file (Windows)
        atexit.register(_remove_quietly, name)
    return mapped


def _remove_quietly(name: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(name)


def _check_disk(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise OSError(
            f"the standardised copy of the data needs {needed / 2**30:.2f} GiB in "
            f"{directory}, but {free / 2**30:.2f} GiB are free: give a smaller image size, or "
            "set DELTANET_DATA to a disk with room."
        )


def _prune(folder: Path, keep: Path) -> None:
    """Remove the least recently used derived files beyond ``KEEP_DERIVED`` (never ``keep``),
    and temporary files older than ``STALE_TMP_SECONDS``. A file another process has mapped
    stays readable to it (POSIX unlinks only the name); a failure to remove is ignored."""
    now = time.time()
    files = []
    for entry in os.scandir(folder):
        with contextlib.suppress(OSError):  # removed meanwhile by another process
            mtime = entry.stat().st_mtime
            if entry.name.startswith("."):
                if entry.name.endswith(".tmp") and now - mtime > STALE_TMP_SECONDS:
                    os.remove(entry.path)
            elif entry.path != str(keep):
                files.append((mtime, entry.path))
    for _, name in sorted(files, reverse=True)[KEEP_DERIVED - 1 :]:
        _remove_quietly(name)


# --- the split of training runs -----------------------------------------------------------------
def split_mapped(
    x: np.ndarray, y: np.ndarray, val_fraction: float, *, seed: int, standardize: bool
) -> tuple[Pair, Pair | None, Standardizer | None]:
    """The CLI's split of a memory-mapped training set in bounded memory: ``(train, val or
    None, standardizer or None)`` with the training and validation inputs as memory-mapped
    files (``mapped_copy``).

    The same rows as ``train_val_split(x, y, val_fraction, seed=seed)`` (when
    ``val_fraction > 0``), and the standardizer fitted on the training rows only, streamed
    (``fit_standardizer``: its statistics can differ from ``Standardizer.fit``'s in the last
    bits).
    """
    keep = held = None
    if val_fraction > 0:
        keep, held = split_indices(y, val_fraction, seed=seed)
    standardizer = fit_standardizer(x, keep) if standardize else None
    train = (mapped_copy(x, keep, standardizer=standardizer), y if keep is None else y[keep])
    val = None
    if held is not None:
        val = (mapped_copy(x, held, standardizer=standardizer), y[held])
    return train, val, standardizer
