"""What a dataset is and how its arrays are checked and split: ``Dataset``, ``validate_arrays``,
``split_indices``, ``train_val_split``, and ``data_root`` (where downloads and caches go).

Arrays are channels-first, one example per row: ``x`` float32 ``(N, C, *spatial)`` (or ``(N, F)``
for plain features), ``y`` int64 class labels ``(N,)``. Every dataset carries a held-out test set
that training never sees, and that test set never changes between runs: it is fixed by the
dataset (MNIST, MNIST-1D) or drawn with a fixed seed (``SPLIT_SEED``: digits, ``.npz`` without
``x_test``, the test half of ``volumes``), whatever ``seed`` a training run uses.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The seed of every held-out split: a constant, so the test set is the same in every run.
SPLIT_SEED = 0
# The most classes a dataset may have (ImageNet has 1,000): a stray label of 1,000,000 must not
# build a million-way output layer and a 10^12-cell confusion matrix.
MAX_CLASSES = 1000


class DataNote(UserWarning):
    """What a loader did that the user should know (e.g. a channel axis it added); the
    ``deltanet`` command prints these as ``deltanet: note: ...``."""


@dataclass(repr=False)
class Dataset:
    """A train/test pair of arrays: ``x`` float32 ``(N, *input_shape)``, ``y`` int64 ``(N,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def data_root() -> Path:
    """Where downloads and caches go: ``$DELTANET_DATA`` or ``~/.cache/deltanet``."""
    return Path(os.environ.get("DELTANET_DATA") or "~/.cache/deltanet").expanduser()


# --- validation ---------------------------------------------------------------------------
def validate_arrays(
    x: np.ndarray, y: np.ndarray, num_classes: int | None = None, where: str = "data"
) -> None:
    """Check ``x (N, ...)`` and labels ``y (N,)`` before training; ValueError naming ``where``.

    ``x``: a real numeric array with at least 2 dims, at least one example, all values finite.
    ``y``: 1-D, one label per example, integers (an integer dtype, or floats holding whole
    numbers), ``>= 0`` and ``< num_classes`` when that is given.
    """
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise TypeError(
            f"{where}: x and y must be numpy arrays. "
            f"Received: x {type(x).__name__}, y {type(y).__name__}."
        )
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{where}: x must hold real numbers. Received dtype {x.dtype}.")
    if x.ndim < 2 or min(x.shape) == 0:
        raise ValueError(
            f"{where}: x must have shape (N, ...) with N >= 1, at least 2 dims and no empty "
            f"axis (e.g. (N, C, H, W)). Received shape {x.shape}."
        )
    if x.dtype.kind == "f":
        check_finite(where, x)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{where}: y must have shape (N,) = ({x.shape[0]},), one label per example. "
            f"Received shape {y.shape}."
        )
    _validate_labels(y, num_classes, where)


def check_finite(where: str, x: np.ndarray) -> None:
    """ValueError naming ``where`` and the first non-finite value unless the float array ``x``
    is all finite (``all_finite``: no mask of a memory-mapped ``x``'s size)."""
    if not all_finite(x):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{where}: x must be finite. Received {x[tuple(bad)]} at index {tuple(bad.tolist())} "
            f"({np.count_nonzero(~np.isfinite(x))} non-finite values)."
        )


def all_finite(x: np.ndarray, chunk_bytes: int = 64 * 1024**2) -> bool:
    """``np.isfinite(x).all()`` a block of rows at a time: a memory-mapped dataset larger than
    memory is checked without a mask of its full size."""
    step = chunk_rows(x, chunk_bytes)
    return all(bool(np.isfinite(x[i : i + step]).all()) for i in range(0, len(x), step))


def chunk_rows(x: np.ndarray, chunk_bytes: int) -> int:
    """How many rows of ``x`` make about ``chunk_bytes`` (at least one; N may be 0)."""
    return max(1, chunk_bytes // max(1, x.dtype.itemsize * math.prod(x.shape[1:])))


def _validate_labels(y: np.ndarray, num_classes: int | None, where: str) -> None:
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"{where}: labels must be integers (class indices). Received {y[i]} at index {i}."
            )
    elif y.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: labels must be integers (class indices). Received dtype {y.dtype}."
        )
    if y.size == 0:
        return
    if y.min() < 0:
        i = int(np.argmin(y))
        raise ValueError(f"{where}: labels must be >= 0. Received {y[i]} at index {i}.")
    if num_classes is not None and y.max() >= num_classes:
        i = int(np.argmax(y))
        raise ValueError(
            f"{where}: labels must be in [0, {num_classes}) for {num_classes} classes. "
            f"Received {y[i]} at index {i}."
        )


def _spans(values: np.ndarray, limit: int = 6) -> str:
    """Sorted ints as ``0..99, 101, 103..110, ...``: at most ``limit`` runs, then a count."""
    breaks = np.flatnonzero(np.diff(values) != 1) + 1
    runs = np.split(values, breaks)
    text = [f"{r[0]}..{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs[:limit]]
    more = f", ... ({len(values)} in all)" if len(runs) > limit else ""
    return ", ".join(text) + more


def _labelled(y: np.ndarray, labels: np.ndarray, limit: int = 6) -> str:
    """``label 999 (1 example, first at index 17), ...`` for the first ``limit`` labels."""
    parts = []
    for label in labels[:limit]:
        hits = np.flatnonzero(y == label)
        parts.append(
            f"label {label} ({len(hits)} example{'s' if len(hits) > 1 else ''}, "
            f"first at index {hits[0]})"
        )
    return ", ".join(parts) + (f", ... ({len(labels)} labels)" if len(labels) > limit else "")


def count_classes(
    y: np.ndarray, y_test: np.ndarray, where: str, *, declared: int | None = None
) -> int:
    """The number of classes K of training labels ``y`` and test labels ``y_test`` (integers
    >= 0, as ``validate_arrays`` checks them); ValueError naming ``where`` and the labels at fault.

    The labels must be the class indices ``0 .. K-1`` with K <= ``MAX_CLASSES``; training needs
    at least 2 classes, and every test label must occur in training. Without ``declared``
    (e.g. the length of ``class_names``) K is the largest label + 1 and every class must have
    training examples: a stray label 999 or labels 100, 200, 300 leave classes without any,
    and are refused rather than silently building a 1000-way or a 301-way classifier.
    """
    top = int(max(y.max(), y_test.max()))
    k = top + 1 if declared is None else declared
    if k > MAX_CLASSES:
        source = "class_names lists" if declared is not None else "the labels make"
        raise ValueError(
            f"{where}: {source} {k} classes, more than deltanet trains ({MAX_CLASSES}). "
            f"Labels are class indices 0..K-1; the largest is {_labelled(*_top(y, y_test))}."
        )
    if top >= k:
        raise ValueError(
            f"{where}: the labels go up to {top}, so class_names must be a 1-D array of at "
            f"least {top + 1} strings. Received {k} names; the largest label: "
            f"{_labelled(*_top(y, y_test))}."
        )
    train = np.unique(y).astype(np.int64)
    if len(train) < 2:
        raise ValueError(
            f"{where}: training needs at least 2 classes; every one of the {len(y)} labels of "
            f"y is {train[0]}."
        )
    unseen = np.setdiff1d(np.unique(y_test).astype(np.int64), train)
    if len(unseen):
        raise ValueError(
            f"{where}: the test labels hold classes that never occur in training, which the "
            f"model cannot learn: {_labelled(y_test, unseen)}."
        )
    empty = np.setdiff1d(np.arange(k), train)
    if len(empty) and declared is None:
        above = train[train > empty[0]]
        raise ValueError(
            f"{where}: labels must be the class indices 0..K-1, each with training examples. "
            f"The labels of y leave {len(empty)} of the classes 0..{k - 1} without one "
            f"({_spans(empty)}); above the first gap: {_labelled(y, above)}. Relabel them "
            f"0..{len(train) - 1} (np.unique(y, return_inverse=True)[1]), or give class_names "
            "to declare every class."
        )
    if len(empty):
        warnings.warn(
            f"{where}: {len(empty)} of the {k} classes of class_names have no training "
            f"example ({_spans(empty)}); the model will never predict them.",
            DataNote,
            stacklevel=2,
        )
    return k


def _top(y: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, [largest])`` of whichever of y and y_test holds the largest label."""
    labels = y if y.max() >= y_test.max() else y_test
    return labels, np.array([labels.max()])


# --- splits -----------------------------------------------------------------------------
def split_indices(
    y: np.ndarray, fraction: float, *, seed: int = SPLIT_SEED, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(keep, held_out)`` index arrays (sorted) with ``ceil(fraction * N)`` held out.

    Stratified: each class gives its share (largest remainder), so class proportions match.

    Raises ValueError for a ``fraction`` outside (0, 1) or one that would leave a split empty.
    """
    n = len(y)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in (0, 1). Received: {fraction}.")
    n_out = math.ceil(fraction * n - 1e-9)
    if n_out < 1 or n_out >= n:
        raise ValueError(
            f"Cannot hold out {fraction:.0%} of {n} examples: both parts must be non-empty."
        )
    perm = np.random.default_rng(seed).permutation(n)
    if not stratify:
        return np.sort(perm[n_out:]), np.sort(perm[:n_out])
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * (n_out / n)
    take = np.floor(quota).astype(np.int64)
    extra = np.argsort(-(quota - take), kind="stable")[: n_out - take.sum()]
    take[extra] += 1
    # A stable sort of the shuffled indices by class keeps each class in random order; the
    # first take[c] of class c are held out.
    perm = perm[np.argsort(inverse[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cls = inverse[perm]
    rank = np.arange(n) - starts[cls]
    held = rank < take[cls]
    return np.sort(perm[~held]), np.sort(perm[held])


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float = 0.2,
    *,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_val, y_val)`` with ``ceil(val_fraction * N)`` rows held out.

    Raises ValueError for ``x`` and ``y`` of different lengths, a ``val_fraction`` outside (0, 1) or
    one that would leave a split empty.
    """
    if len(x) != len(y):
        raise ValueError(
            f"x and y must have the same number of examples. Received: {len(x)} and {len(y)}."
        )
    keep, held = split_indices(y, val_fraction, seed=seed, stratify=stratify)
    return x[keep], y[keep], x[held], y[held]
