"""Losses on logits (or probabilities): each returns ``(value, dinput)`` in one pass.

``value`` is a Python float; ``dinput`` (``dL/dlogits``, ``dL/dprobs`` or ``dL/dpred``) has the
input's shape and dtype. These are public entry points, so they validate their arguments.

Reductions: ``"sum"`` adds every term. ``"mean"`` differs per loss, on purpose:

- ``softmax_cross_entropy``: mean over the samples (and spatial positions), as PyTorch's
  ``cross_entropy``;
- ``sigmoid_cross_entropy`` and ``binary_cross_entropy``: sum over the classes, mean over the
  batch axis only (divide by ``N``), i.e. the one-vs-all cost of the classic 400-25-10 digit
  network, ``J = (1/m) Σ_i Σ_k [-y log h - (1 - y) log(1 - h)]``. PyTorch's ``BCEWithLogitsLoss``
  / ``BCELoss`` with ``reduction="mean"`` divide by ``N * K`` instead; their ``"sum"`` divided
  by ``N`` equals this mean;
- ``mean_squared_error``: mean over all elements, as PyTorch's ``MSELoss``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deltanet.ops.activations import log_softmax_forward, sigmoid_forward


def softmax_cross_entropy(
    logits: np.ndarray,
    target: np.ndarray,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Cross-entropy of ``softmax(logits)`` along axis 1 against labels or probabilities.

    logits: (N, K, *spatial); target: integer labels (N, *spatial) in [0, K), or probabilities
    of the logits' shape: non-negative, summing to 1 along axis 1 at every sample and position
    (PyTorch would take any numbers: a silently wrong loss). Label smoothing as PyTorch:
    ``t = (1 - ε) t + ε / K``. Returns (loss, dlogits) with ``dlogits = softmax(z) Σ_k t_k - t``
    (``softmax(z) - t`` up to rounding), divided by ``N * prod(spatial)`` for ``"mean"``.

    Raises TypeError for logits that are not a float array, ValueError for labels of the wrong shape
    or outside [0, K), soft targets that are not distributions, a ``label_smoothing`` outside [0, 1]
    or a ``reduction`` other than mean or sum.
    """
    name = "softmax_cross_entropy"
    _check_array(name, logits, "logits", min_ndim=2)
    _check_reduction(name, reduction)
    eps = _check_fraction(name, "label_smoothing", label_smoothing)
    target = np.asarray(target)
    k = logits.shape[1]
    count = logits.size // k  # samples times spatial positions
    logp, _ = log_softmax_forward(logits, axis=1)
    with np.errstate(under="ignore"):  # e^{logp} underflowing to 0 is the exact answer
        p = np.exp(logp)
    if np.issubdtype(target.dtype, np.integer):
        labels = _check_labels(name, target, logits.shape, k)
        loss, dlogits = _ce_labels(logp, p, labels, eps)
    else:
        if target.shape == (logits.shape[0], *logits.shape[2:]) and target.shape != logits.shape:
            raise TypeError(
                f"{name}: labels of shape {target.shape} must be integers "
                f"(or give probabilities of shape {logits.shape}). Received dtype: {target.dtype}."
            )
        t = _check_probabilities(name, target, logits, "target")
        t = _check_distributions(name, t, target.dtype)
        if eps:
            t = t * (1 - eps) + eps / k
        loss = -(t * logp).sum(dtype=np.float64)
        # d/dz_j [-Σ_k t_k (z_k - logsumexp z)] = p_j Σ_k t_k - t_j
        dlogits = p * t.sum(axis=1, keepdims=True) - t
    return _reduce(loss, dlogits, reduction, count)


def _ce_labels(
    logp: np.ndarray, p: np.ndarray, labels: np.ndarray, eps: float
) -> tuple[float, np.ndarray]:
    """Summed loss and gradient for labels (N, 1, *spatial), without building a one-hot array."""
    k = logp.shape[1]
    # t = (1 - ε) onehot + ε/K, so -Σ t log p = -(1 - ε) log p_label - (ε/K) Σ log p
    loss = -(1 - eps) * np.take_along_axis(logp, labels, axis=1).sum(dtype=np.float64)
    if eps:
        loss -= eps / k * logp.sum(dtype=np.float64)
    # δ = p - t: subtract ε/K everywhere and (1 - ε) more at the label (p is ours to modify)
    dlogits = p - eps / k if eps else p
    picked = np.take_along_axis(dlogits, labels, axis=1)
    np.put_along_axis(dlogits, labels, picked - (1 - eps), axis=1)
    return float(loss), dlogits


def sigmoid_cross_entropy(
    logits: np.ndarray, target: np.ndarray, reduction: str = "mean"
) -> tuple[float, np.ndarray]:
    """Per-element binary cross-entropy of ``σ(logits)`` against targets in [0, 1].

    logits: (N, ...); target: same shape. ``"mean"`` sums over all but the batch axis and
    divides by ``N`` (the one-vs-all cost; see the module docstring). Returns (loss, dlogits)
    with ``dlogits = σ(z) - y`` (divided by ``N`` for ``"mean"``).

    Raises TypeError for an input that is not a float array, ValueError for shapes that disagree,
    targets that are not finite (or out of range), or a ``reduction`` other than mean or sum.
    """
    name = "sigmoid_cross_entropy"
    _check_array(name, logits, "logits", min_ndim=1)
    _check_reduction(name, reduction)
    y = _check_probabilities(name, target, logits, "target", unit_interval=True)
    with np.errstate(under="ignore"):
        # -y log σ(z) - (1-y) log(1-σ(z)) = max(z, 0) - z y + log(1 + e^{-|z|}), never overflowing
        terms = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    dlogits = sigmoid_forward(logits)[0] - y
    return _reduce(terms.sum(dtype=np.float64), dlogits, reduction, logits.shape[0])


def binary_cross_entropy(
    probs: np.ndarray, target: np.ndarray, reduction: str = "mean", eps: float = 1e-12
) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on probabilities (the output of a Sigmoid layer), as PyTorch's BCE.

    probs, target: same shape (N, ...), values in [0, 1]. Each log is clamped at -100 and the
    gradient's denominator ``a (1 - a)`` at ``eps``, as PyTorch does. ``"mean"`` divides by ``N``
    only. Returns (loss, dprobs) with ``dprobs = (a - y) / (a (1 - a))``, which the sigmoid's
    backward ``σ(1 - σ)`` turns into ``a - y``.

    Raises TypeError for an input that is not a float array, ValueError for shapes that disagree,
    targets that are not finite (or, for ``probs``, outside [0, 1]), or a ``reduction`` other than
    mean or sum.
    """
    name = "binary_cross_entropy"
    _check_array(name, probs, "probs", min_ndim=1)
    _check_reduction(name, reduction)
    y = _check_probabilities(name, target, probs, "target", unit_interval=True)
    a = _check_probabilities(name, probs, probs, "probs", unit_interval=True)
    log_a, log_1ma = _clamped_log(a), _clamped_log(1 - a)
    loss = -(y * log_a + (1 - y) * log_1ma).sum(dtype=np.float64)
    with np.errstate(under="ignore"):
        dprobs = (a - y) / np.maximum(a * (1 - a), eps)
    return _reduce(loss, dprobs, reduction, probs.shape[0])


def mean_squared_error(
    pred: np.ndarray, target: np.ndarray, reduction: str = "mean"
) -> tuple[float, np.ndarray]:
    """Squared error ``Σ (p - y)²``, averaged over all elements for ``"mean"`` (as ``MSELoss``).

    pred, target: same shape. Returns (loss, dpred) with ``dpred = 2 (p - y)`` (/ numel for mean).

    Raises TypeError for an input that is not a float array, ValueError for shapes that disagree,
    targets that are not finite (or out of range), or a ``reduction`` other than mean or sum.
    """
    name = "mean_squared_error"
    _check_array(name, pred, "pred", min_ndim=0)
    _check_reduction(name, reduction)
    y = _check_probabilities(name, target, pred, "target")
    diff = pred - y
    return _reduce((diff * diff).sum(dtype=np.float64), 2 * diff, reduction, max(pred.size, 1))


# --- shared pieces ----------------------------------------------------------------------------


def _reduce(loss: float, grad: np.ndarray, reduction: str, count: int) -> tuple[float, np.ndarray]:
    """Divide the summed loss and its gradient by ``count`` for ``"mean"``."""
    if reduction == "mean":
        count = max(count, 1)  # an empty batch has loss 0, not a ZeroDivisionError
        return float(loss) / count, grad / count  # an int count keeps float32 float32
    return float(loss), grad


def _clamped_log(a: np.ndarray) -> np.ndarray:
    """``max(log a, -100)`` without evaluating ``log 0`` (PyTorch's BCE clamp)."""
    out = np.full_like(a, -100)
    np.log(a, out=out, where=a > 0)
    return np.maximum(out, -100)


def _check_reduction(name: str, reduction: object) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f'{name}: reduction must be "mean" or "sum". Received: {reduction!r}.')


def _check_fraction(name: str, arg: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: {arg} must be a float in [0, 1]. Received: {value!r}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: {arg} must be a float in [0, 1]. Received: {value!r}.")
    return float(value)


def _check_array(name: str, x: object, arg: str, min_ndim: int) -> None:
    """``x`` must be a float ndarray with at least ``min_ndim`` dims (and a non-empty axis 1)."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        received = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"{name}: expected {arg} as a floating-point numpy.ndarray. Received: {received}."
        )
    if x.ndim < min_ndim or (min_ndim >= 2 and x.shape[1] == 0):
        shape = {0: "any shape", 1: "(N, ...)", 2: "(N, K, ...) with K >= 1"}[min_ndim]
        raise ValueError(f"{name}: expected {arg} of shape {shape}. Received: {x.shape}.")


def _check_labels(name: str, target: np.ndarray, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Integer labels (N, *spatial) in [0, K), returned as (N, 1, *spatial) intp indices."""
    expected = (shape[0], *shape[2:])
    if target.shape != expected:
        raise ValueError(
            f"{name}: expected integer labels of shape {expected} for logits of shape {shape} "
            f"(or probabilities of the logits' shape). Received: {target.shape}."
        )
    if target.size and (target.min() < 0 or target.max() >= k):
        raise ValueError(
            f"{name}: labels must be in [0, {k}). Received: min {target.min()}, max {target.max()}."
        )
    return np.expand_dims(target.astype(np.intp, copy=False), 1)


def _check_probabilities(
    name: str, target: np.ndarray, like: np.ndarray, arg: str, unit_interval: bool = False
) -> np.ndarray:
    """A finite real ``target`` of ``like``'s shape, cast to ``like``'s dtype."""
    target = np.asarray(target)
    if not (np.issubdtype(target.dtype, np.number) or target.dtype == np.bool_) or np.issubdtype(
        target.dtype, np.complexfloating
    ):
        raise TypeError(f"{name}: expected a real-valued {arg}. Received dtype: {target.dtype}.")
    if target.shape != like.shape:
        raise ValueError(
            f"{name}: expected {arg} of shape {like.shape} (the input's shape). "
            f"Received: {target.shape}."
        )
    target = target.astype(like.dtype, copy=False)
    if not np.isfinite(target).all():
        raise ValueError(f"{name}: {arg} must be finite. Received NaN or inf values.")
    if unit_interval and target.size and (target.min() < 0 or target.max() > 1):
        raise ValueError(
            f"{name}: {arg} values must be in [0, 1]. "
            f"Received: min {target.min()}, max {target.max()}."
        )
    return target


def _check_distributions(name: str, t: np.ndarray, given: np.dtype) -> np.ndarray:
    """Soft targets ``t (N, K, *spatial)``: non-negative, each distribution over axis 1 summing
    to 1 within a tolerance that grows with K and the epsilon of the coarser of ``t``'s dtype and
    the ``given`` one (float32 targets cast to float64 keep their rounding)."""
    if t.size == 0:
        return t
    k = t.shape[1]
    eps = max(float(np.finfo(d).eps) for d in (t.dtype, given) if d.kind == "f")
    tol = max(eps**0.5, 4 * k * eps)
    sums = t.sum(axis=1, dtype=np.float64)
    bad = (t < 0).any(axis=1) | (np.abs(sums - 1) > tol)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        row = np.moveaxis(t, 1, -1)[first]  # the K values of that distribution
        where = f"row {first[0]}" + (f" at position {first[1:]}" if first[1:] else "")
        raise ValueError(
            f"{name}: target probabilities must be non-negative and sum to 1 along axis 1 "
            f"(within {tol:.1e}); {np.count_nonzero(bad)} of {bad.size} distributions do not. "
            f"First: {where}, sum {sums[first]:.6g}, min {row.min():.6g}: "
            f"{np.array2string(row, threshold=12)}. "
            "Give integer labels, or normalise the rows (t / t.sum(axis=1, keepdims=True))."
        )
    return t


# --- losses by name (fit, evaluate and the command line take a name) --------------------------

LossFn = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]


def _one_hot_targets(fn: LossFn) -> LossFn:
    """Wrap a loss on targets of the logits' shape so it also takes integer labels (N,)."""

    def loss(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        if np.issubdtype(y.dtype, np.integer) and y.ndim == logits.ndim - 1:
            y = np.eye(logits.shape[1], dtype=logits.dtype)[y]
        return fn(logits, y)

    loss.__name__ = fn.__name__
    return loss


LOSSES: dict[str, LossFn] = {
    "cross_entropy": softmax_cross_entropy,
    "sigmoid_cross_entropy": _one_hot_targets(sigmoid_cross_entropy),
    "mse": _one_hot_targets(mean_squared_error),
}


def resolve_loss(loss: str | LossFn, where: str = "fit") -> LossFn:
    """A loss callable ``(logits, y) -> (value, dlogits)`` from itself or from its name.

    Raises ValueError for an unknown name (listing the losses), TypeError for anything that is
    neither a name nor a callable.
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"{where}: unknown loss {loss!r}. Valid names: {', '.join(LOSSES)}.")
        return LOSSES[loss]
    if not callable(loss):
        raise TypeError(
            f"{where}: loss must be a name ({', '.join(LOSSES)}) or a callable "
            f"(logits, y) -> (value, dlogits). Received: {type(loss).__name__}."
        )
    return loss
