"""evaluate / predict, and the input checks that fit shares with them.

Both run the model in eval mode (dropout off, batch norm on its running statistics) in
batches, and restore each layer's own mode afterwards. A strategy (``deltanet.train.strategy``)
decides which rows this process evaluates and reduces the sums: all of them and nothing to
reduce in one process; a shard each and an allreduce over MPI ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.data import validate_arrays
from deltanet.data.dataset import check_finite
from deltanet.layers.base import Layer, mode
from deltanet.metrics import predicted_classes
from deltanet.ops.losses import LossFn, resolve_loss
from deltanet.train.select import select_strategy
from deltanet.train.strategy import Strategy

# --- input validation -----------------------------------------------------------------------


def check_xy(where: str, x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Float ``x (N, ...)`` and integer labels ``y (N,)``, finite and of matching length."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"{where}: {what} x must be a float numpy array (N, ...) with the batch axis first "
            f"(float32 or float64). Received: {got}."
        )
    validate_arrays(x, y, where=f"{where}: {what}")
    return x, y.astype(np.int64, copy=False)


def check_int(where: str, arg: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {arg} must be an int. Received: {value!r}.")
    if value < minimum:
        raise ValueError(f"{where}: {arg} must be >= {minimum}. Received: {value}.")
    return int(value)


def _check_batch_args(where: str, model: Any, x: Any, batch_size: Any) -> int:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: model must be a deltanet Layer. Received: {type(model).__name__}."
        )
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"{where}: x must be a float numpy array (N, ...) with the batch axis first. "
            f"Received: {got}."
        )
    if x.ndim < 2:
        raise ValueError(
            f"{where}: x must have shape (N, ...) with the batch axis first. Received: {x.shape}."
        )
    return check_int(where, "batch_size", batch_size, 1)


# --- evaluate / predict ---------------------------------------------------------------------


def evaluate(
    model: Layer,
    loss: str | LossFn,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 256,
    distributed: bool = False,
    strategy: Strategy | None = None,
) -> dict[str, float]:
    """Mean loss, accuracy (and ``top5`` with more than 5 classes) of ``model`` on ``(x, y)``.

    Runs in eval mode (dropout off, batch-norm running statistics) and restores the mode.
    ``distributed``: every MPI rank passes the whole ``(x, y)`` and evaluates its shard; the
    sums are reduced, so every rank returns the scores of the whole set (the short form of
    ``strategy=deltanet.distributed.MPIStrategy()``).

    Returns ``{"loss", "accuracy"[, "top5"]}`` as floats. Raises TypeError for ``x`` that is not a
    float array or labels that are not integers, ValueError for non-finite values, lengths that
    differ or labels out of the model's range.
    """
    strategy = select_strategy("evaluate", strategy, distributed)
    loss_fn = resolve_loss(loss, "evaluate")
    batch_size = _check_batch_args("evaluate", model, x, batch_size)
    x, y = check_xy("evaluate", x, y, "data")
    return evaluate_batches(model, loss_fn, x, y, batch_size, strategy)


def evaluate_batches(
    model: Layer, loss_fn: LossFn, x, y, batch_size: int, strategy: Strategy
) -> dict[str, float]:
    """``evaluate`` on checked arguments: ``strategy`` picks this process's rows, sums them."""
    n = len(x)
    part = strategy.shard(n)
    x, y = x[part], y[part]
    sums = np.zeros(4)  # loss x examples, correct, in the top 5, "more than 5 classes"
    with mode(model, False):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb)
            value, _ = loss_fn(logits, yb)
            sums[0] += float(value) * len(yb)
            sums[1] += int(np.count_nonzero(predicted_classes(logits) == yb))
            if logits.shape[1] > 5:
                top = np.argpartition(-logits, 4, axis=1)[:, :5]  # any order within the top 5
                sums[2] += int(np.count_nonzero(top == yb[:, None]))
                sums[3] = 1
    strategy.reduce(sums, "evaluate")
    scores = {"loss": float(sums[0]) / n, "accuracy": float(sums[1]) / n}
    if sums[3] > 0:
        scores["top5"] = float(sums[2]) / n
    return scores


def predict(model: Layer, x: np.ndarray, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Classes (N,) int64 and probabilities (N, K): softmax of the logits (sigmoid for K = 1).

    Runs in eval mode and restores the mode. Non-finite values in ``x`` are refused, as
    ``evaluate`` refuses them (a NaN would come back as class 0 with NaN probabilities).

    Raises TypeError for ``x`` that is not a float array, ValueError for non-finite values or a
    ``batch_size`` below 1.
    """
    batch_size = _check_batch_args("predict", model, x, batch_size)
    check_finite("predict", x)
    classes, probs = [], []
    with mode(model, False):
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            if logits.ndim != 2:
                raise ValueError(
                    f"predict: the model must output logits (N, K). Received: {logits.shape}."
                )
            classes.append(predicted_classes(logits))
            probs.append(_probabilities(logits))
    if not classes:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=x.dtype)
    return np.concatenate(classes), np.concatenate(probs)


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax along axis 1 (``exp(z - max z)`` normalised); sigmoid for a single column."""
    if logits.shape[1] == 1:
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-logits))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
