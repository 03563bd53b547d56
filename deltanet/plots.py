"""Training plots saved as PNG with matplotlib's Agg backend (no display needed).

matplotlib is imported inside the functions, so importing deltanet (or running ``deltanet --help``)
stays fast. Every function writes one PNG to ``path`` and returns the path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (chosen before pyplot is imported)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: PathLike) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _series(history: Any) -> dict[str, list[float]]:
    """A dict of per-epoch lists from a History (``.history``) or a mapping."""
    data = getattr(history, "history", history)
    if not isinstance(data, Mapping):
        raise TypeError(
            f"plot_history: expected a History or a dict of lists. Received: {type(history)}."
        )
    return {str(k): [float(v) for v in vals] for k, vals in data.items() if len(vals)}


def plot_history(history: Any, path: PathLike) -> Path:
    """Learning curves: loss (left) and accuracy (right) per epoch, train and validation."""
    data = _series(history)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in data:
                values = data[key]
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return _save(fig, path)


CELL_LABELS = 30  # classes up to which each cell of the confusion matrix shows its count
TICK_LABELS = 40  # tick labels at most along each axis of the confusion matrix


def plot_confusion_matrix(
    cm: np.ndarray, path: PathLike, class_names: Sequence[str] | None = None
) -> Path:
    """Confusion matrix ``cm (K, K)`` (rows: true class, columns: predicted) with the counts."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a (K, K) matrix. Received: {cm.shape}.")
    k = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(
            f"plot_confusion_matrix: expected {k} class names. Received: {len(names)}."
        )
    plt = _pyplot()
    # The figure, the cell labels and the ticks grow with K only up to a point, so that 1,000
    # classes draw in about a second instead of minutes and gigabytes: above CELL_LABELS
    # classes the counts are the colours alone, above TICK_LABELS the ticks are sparse.
    size = min(max(4.0, 0.5 * k + 2), 16.0)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues", interpolation="nearest")
    if k <= CELL_LABELS:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", color=color, fontsize=8)
    ticks = range(0, k, max(1, -(-k // TICK_LABELS)))
    ax.set_xticks(ticks, [names[t] for t in ticks], rotation=90 if k > 12 else 0)
    ax.set_yticks(ticks, [names[t] for t in ticks])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({int(np.trace(cm))}/{int(cm.sum())} correct)")
    return _save(fig, path)


def _as_images(weight: np.ndarray) -> np.ndarray:
    """Filters or dense rows as 2D images ``(M, h, w)``.

    conv (O, C, kh, kw) -> O*C images; conv1d (O, C, k) -> rows of width k; conv3d (O, C, d, h, w)
    -> the middle depth slice; dense (O, I) -> each row as a square image (zero-padded) when I is
    not a perfect square.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 2:
        side = math.isqrt(w.shape[1] - 1) + 1 if w.shape[1] > 0 else 0
        padded = np.zeros((w.shape[0], side * side))
        padded[:, : w.shape[1]] = w
        return padded.reshape(w.shape[0], side, side)
    if w.ndim == 3:
        return w.reshape(-1, 1, w.shape[-1])
    if w.ndim == 4:
        return w.reshape(-1, *w.shape[-2:])
    if w.ndim == 5:
        return w[:, :, w.shape[2] // 2].reshape(-1, *w.shape[-2:])
    raise ValueError(
        "plot_filters: expected a dense (O, I) or conv (O, C, *kernel) weight. "
        f"Received: {w.shape}."
    )


def _grid(n: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def plot_filters(weight: np.ndarray, path: PathLike, max_images: int = 64) -> Path:
    """First-layer filters (conv weights) or hidden units (dense rows) as an image grid."""
    images = _as_images(weight)[:max_images]
    rows, cols = _grid(len(images))
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols + 1, 1.2 * rows + 1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images):
        lim = np.abs(img).max() or 1.0  # symmetric colour range: zero is always grey
        ax.imshow(img, cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.suptitle(f"filters {tuple(np.shape(weight))}")
    return _save(fig, path)


def _example_image(x: np.ndarray) -> np.ndarray:
    """One example (C, H, W), (C, D, H, W) or (features,) as a 2D image for display."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4:  # a volume (C, D, H, W): the middle depth slice
        x = x[:, x.shape[1] // 2]
    if x.ndim == 3:
        return x[0] if x.shape[0] != 3 else np.moveaxis(x, 0, -1).clip(0, 1)
    return _as_images(x.reshape(1, -1))[0]


def plot_misclassified(
    x: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: PathLike,
    n: int = 25,
    class_names: Sequence[str] | None = None,
) -> Path:
    """A grid of up to ``n`` misclassified examples, each titled ``true -> predicted``.

    x: (N, C, *spatial) or (N, features); y_true, y_pred: (N,) integer labels.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(x) != len(y_true) or y_true.shape != y_pred.shape:
        raise ValueError(
            "plot_misclassified: x, y_true and y_pred must have the same length. "
            f"Received: {len(x)}, {y_true.shape}, {y_pred.shape}."
        )
    wrong = np.flatnonzero(y_true != y_pred)[:n]
    names = None if class_names is None else [str(c) for c in class_names]
    plt = _pyplot()
    rows, cols = _grid(max(len(wrong), 1))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 1, 1.8 * rows + 1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        example = np.asarray(x[i])
        if example.ndim == 2:  # a sequence (C, L): one line per channel
            ax.plot(example.T, linewidth=1)
        else:
            ax.imshow(_example_image(example), cmap="gray_r", interpolation="nearest")
        t, p = (int(y_true[i]), int(y_pred[i]))
        label = f"{t} -> {p}" if names is None else f"{names[t]} -> {names[p]}"
        ax.set_title(label, fontsize=9, color="tab:red")
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
    count = np.count_nonzero(y_true != y_pred)
    fig.suptitle(f"misclassified: {count} of {len(y_true)} (true -> predicted)")
    return _save(fig, path)
