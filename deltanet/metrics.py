"""Classification metrics on logits and labels: accuracy, top-k accuracy, confusion matrix.

Logits are ``(N, K)`` scores (any monotone transform of the class probabilities: logits,
probabilities, log-probabilities); labels are integers ``(N,)`` in ``[0, K)``. A single output
column (``K == 1``) is a binary classifier whose positive class is ``score > 0``.
"""

from __future__ import annotations

import numpy as np


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    """The class with the highest score: logits (N, K) -> (N,) int64 (ties: the first)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(
            f"predicted_classes: expected logits of shape (N, K). Received: {logits.shape}."
        )
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(np.int64)
    return np.argmax(logits, axis=1).astype(np.int64)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose highest score is the label: logits (N, K), y (N,) -> float."""
    y = _check_labels("accuracy", logits, y)
    if y.size == 0:
        return 0.0
    return float(np.mean(predicted_classes(logits) == y))


def top_k_accuracy(logits: np.ndarray, y: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores: (N, K), (N,) -> float.

    A label tied with the k-th score counts as a hit only if it is among the first k in the
    stable order of ``argsort(-logits)`` (ties broken by the lower class index, as argmax does).
    """
    y = _check_labels("top_k_accuracy", logits, y)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_accuracy: k must be a positive int. Received: k={k!r}.")
    if y.size == 0:
        return 0.0
    num_classes = logits.shape[1]
    if k >= num_classes:
        return 1.0
    # The label's rank = how many classes beat it, counting ties with a lower index as beating.
    score = np.take_along_axis(logits, y[:, None], axis=1)
    lower_index = np.arange(num_classes)[None, :] < y[:, None]
    beaten_by = (logits > score) | ((logits == score) & lower_index)
    return float(np.mean(beaten_by.sum(axis=1) < k))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of true class i predicted as j: (N,), (N,) -> (K, K) int64."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"confusion_matrix: num_classes must be an int. Received: {num_classes!r}.")
    if num_classes < 1:
        raise ValueError(
            f"confusion_matrix: num_classes must be positive. Received: {num_classes}."
        )
    y_true = _as_label_vector("confusion_matrix", "y_true", y_true, num_classes)
    y_pred = _as_label_vector("confusion_matrix", "y_pred", y_pred, num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"confusion_matrix: y_true and y_pred must have the same length. "
            f"Received: {y_true.shape[0]} and {y_pred.shape[0]}."
        )
    # One bincount over the flat index i*K + j counts every (true, predicted) pair at once.
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _check_labels(name: str, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Validate logits (N, K) and integer labels (N,) in range; returns the labels as int64."""
    if not isinstance(logits, np.ndarray) or logits.ndim != 2:
        shape = logits.shape if isinstance(logits, np.ndarray) else type(logits).__name__
        raise ValueError(f"{name}: expected logits of shape (N, K). Received: {shape}.")
    num_classes = max(logits.shape[1], 2)  # one column: binary labels 0/1
    y = _as_label_vector(name, "y", y, num_classes)
    if y.shape[0] != logits.shape[0]:
        raise ValueError(
            f"{name}: expected {logits.shape[0]} labels (one per row of logits). "
            f"Received: {y.shape[0]}."
        )
    return y


def _as_label_vector(name: str, arg: str, y: np.ndarray, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name}: {arg} must be integer labels. Received dtype: {y.dtype}.")
    if y.ndim != 1:
        raise ValueError(f"{name}: {arg} must have shape (N,). Received: {y.shape}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name}: {arg} must be in [0, {num_classes}). Received: min {y.min()}, max {y.max()}."
        )
    return y.astype(np.int64, copy=False)
