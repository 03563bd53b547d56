"""Jacobians by backpropagation: one backward pass per output unit.

Backpropagation computes a vector-Jacobian product ``δx = δyᵀ J`` for any ``δy``; with ``δy``
the one-hot vector of output unit ``j`` it gives row ``j`` of the Jacobian ``∂y_j/∂x``. The
batch rides along: examples are independent in eval mode, so a one-hot at unit ``j`` of every
example gives row ``j`` of each example's Jacobian in the same pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.layers.base import Layer, mode


def jacobian(model: Layer, x: np.ndarray) -> np.ndarray:
    """``J[n, *out, *in] = ∂ model(x)[n, *out] / ∂ x[n, *in]`` for each example ``n``.

    x: (N, *in) float -> J: (N, *out, *in) in x's dtype, with ``model(x)`` of shape (N, *out).
    The model runs in eval mode (dropout off, batch norm on its running statistics, so that
    the examples do not interact) and gets its mode back; the parameters' ``.grad`` are left
    as they were. Costs one forward pass and ``prod(out)`` backward passes.

    Raises TypeError for a ``model`` that is not a deltanet ``Layer`` or ``x`` that is not a float
    array, ValueError for ``x`` without an example.
    """
    _check(model, x)
    saved_grads = [p.grad.copy() for p in model.parameters()]
    try:
        with mode(model, False):
            return _rows(model, x)
    finally:
        for p, g in zip(model.parameters(), saved_grads):
            p.grad[...] = g


def _rows(model: Layer, x: np.ndarray) -> np.ndarray:
    """One forward pass, then one backward pass per output unit."""
    y = model(x)
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"jacobian: {model.label()} must keep the batch axis: expected an output of "
            f"shape ({x.shape[0]}, ...). Received: {y.shape}."
        )
    n, out_size = x.shape[0], int(np.prod(y.shape[1:], dtype=np.int64))
    rows = np.empty((n, out_size, *x.shape[1:]), dtype=x.dtype)
    seed = np.zeros((n, out_size), dtype=y.dtype)
    for j in range(out_size):  # δy = e_j for every example: row j of each Jacobian
        seed[:, j] = 1
        rows[:, j] = model.backward(seed.reshape(y.shape))
        seed[:, j] = 0
    return rows.reshape(n, *y.shape[1:], *x.shape[1:])


def _check(model: Any, x: Any) -> None:
    """Public entry point: a Layer and a non-empty float array (N, ...)."""
    if not isinstance(model, Layer):
        raise TypeError(f"jacobian: model must be a deltanet Layer. Received: {type(model)}.")
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        received = f"{x.dtype} array" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"jacobian: x must be a floating-point numpy array (N, ...). Received: {received}."
        )
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(
            f"jacobian: x must have a batch axis with at least one example, (N, ...). "
            f"Received: {x.shape}."
        )
