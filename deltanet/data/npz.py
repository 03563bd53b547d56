"""Any ``.npz`` file of arrays ``x`` and ``y`` (optionally ``x_test``, ``y_test``, ``class_names``).

Layout: ``x`` is stored as the model takes it, channels first: ``(N, F)`` features,
``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``. One exception: a 3-D ``x`` whose two
last axes are equal, ``(N, H, H)``, is taken for grayscale images saved without their channel
axis and read as ``(N, 1, H, H)``, with a note (``DataNote``); sequences with as many channels
as steps would be misread so, and must be saved with another length. ``uint8`` values are
scaled by 1/255 to [0, 1]; any other real dtype is cast to float32 as is.

Labels ``y`` are the class indices ``0 .. K-1`` (integers, or floats with whole values), every
class with training examples, 2 <= K <= ``MAX_CLASSES``; every test label must occur in
training. ``class_names`` (optional, a 1-D array of K strings) declares K: classes it names
may then lack examples (a note says which). Without ``x_test``/``y_test`` a stratified 20% is
held out with the fixed ``SPLIT_SEED`` (each class needs 2 examples for that).

Read with ``npy.read_npz``: sizes and headers are checked before anything is decompressed, the
arrays may take ``max_bytes`` (default ``MAX_BYTES``) uncompressed, and nothing is unpickled.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from deltanet.data.dataset import (
    SPLIT_SEED,
    DataNote,
    Dataset,
    count_classes,
    split_indices,
    validate_arrays,
)
from deltanet.data.npy import read_npz

KNOWN_KEYS = ("x", "y", "x_test", "y_test", "class_names")
TEST_FRACTION = 0.2
MAX_BYTES = 2 * 1024**3  # the arrays as stored, uncompressed


def _read(path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"Dataset file not found: {path}.")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise ValueError(f"{path}: not an .npz archive (save one with numpy.savez).")
    return read_npz(path, max_bytes=max_bytes, allowed=KNOWN_KEYS)


def _no_channel_axis(x: np.ndarray, path: Path) -> bool:
    """Whether ``x`` is ``(N, H, H)``: grayscale images saved without their channel axis."""
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        return False
    warnings.warn(
        f"{path}: x has shape {x.shape}: read as {x.shape[0]} grayscale "
        f"{x.shape[1]}x{x.shape[2]} images, shape {(x.shape[0], 1, *x.shape[1:])} (a channel "
        f"axis added). Save x[:, None] to say so yourself; sequences of {x.shape[1]} channels "
        f"and {x.shape[2]} steps would be misread this way.",
        DataNote,
        stacklevel=3,
    )
    return True


def _features(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    return x.astype(np.float32)


def load_npz(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Dataset:
    """A validated Dataset from an ``.npz`` file; ValueError naming the file if anything is off."""
    path = Path(path).expanduser()
    arrays = _read(path, max_bytes)
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r}. Found: {sorted(arrays)}.")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path}: x_test and y_test must come together. Found: {sorted(arrays)}.")
    x, y = arrays["x"], arrays["y"]
    validate_arrays(x, y, where=f"{path} (x, y)")
    add_axis = _no_channel_axis(x, path)
    names = _class_names(arrays.get("class_names"), path)
    declared = None if names is None else len(names)
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        validate_arrays(x_test, y_test, where=f"{path} (x_test, y_test)")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"{path}: x_test examples have shape {x_test.shape[1:]} but x examples have "
                f"shape {x.shape[1:]}: they must match."
            )
        num_classes = count_classes(y, y_test, f"{path} (y, y_test)", declared=declared)
    else:
        num_classes = count_classes(y, y, f"{path} (y)", declared=declared)
        _check_split(y, path)
        train, test = split_indices(y, TEST_FRACTION, seed=SPLIT_SEED, stratify=True)
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    if add_axis:
        x, x_test = x[:, None], x_test[:, None]
    return Dataset(
        name=path.stem,
        x_train=_features(x),
        y_train=y.astype(np.int64),
        x_test=_features(x_test),
        y_test=y_test.astype(np.int64),
        num_classes=num_classes,
        input_shape=x.shape[1:],
        class_names=names or [str(k) for k in range(num_classes)],
    )


def _check_split(y: np.ndarray, path: Path) -> None:
    """Holding out a test set needs 2 examples of each class, one to train on, one to test."""
    labels, counts = np.unique(y, return_counts=True)
    single = labels[counts == 1].astype(np.int64)
    if len(single):
        shown = ", ".join(map(str, single[:8])) + (
            f", ... ({len(single)})" if len(single) > 8 else ""
        )
        which = f"class {shown} has" if len(single) == 1 else f"classes {shown} have"
        raise ValueError(
            f"{path}: {which} a single example: holding out {TEST_FRACTION:.0%} as a test set "
            "needs 2 per class. Add examples, or give x_test and y_test."
        )


def _class_names(names: np.ndarray | None, path: Path) -> list[str] | None:
    if names is None:
        return None
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < 2:
        raise ValueError(
            f"{path}: class_names must be a 1-D array of strings, one per class (at least 2). "
            f"Received {names.dtype} {names.shape}."
        )
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
