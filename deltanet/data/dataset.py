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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The seed of every held-out split: a constant, so the test set is the same in every run.
SPLIT_SEED = 0


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
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"{where}: x must have shape (N, ...) with N >= 1 and at least 2 dims "
            f"(e.g. (N, C, H, W)). Received shape {x.shape}."
        )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{where}: x must be finite. Received {x[tuple(bad)]} at index {tuple(bad.tolist())} "
            f"({np.count_nonzero(~np.isfinite(x))} non-finite values)."
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{where}: y must have shape (N,) = ({x.shape[0]},), one label per example. "
            f"Received shape {y.shape}."
        )
    _validate_labels(y, num_classes, where)


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


# --- splits -----------------------------------------------------------------------------
def split_indices(
    y: np.ndarray, fraction: float, *, seed: int = SPLIT_SEED, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(keep, held_out)`` index arrays (sorted) with ``ceil(fraction * N)`` held out.

    Stratified: each class gives its share (largest remainder), so class proportions match.
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
    """``(x_train, y_train, x_val, y_val)`` with ``ceil(val_fraction * N)`` rows held out."""
    if len(x) != len(y):
        raise ValueError(
            f"x and y must have the same number of examples. Received: {len(x)} and {len(y)}."
        )
    keep, held = split_indices(y, val_fraction, seed=seed, stratify=stratify)
    return x[keep], y[keep], x[held], y[held]
