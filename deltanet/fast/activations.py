"""Activations with ``ops/activations.py``'s names and signatures; ReLU on its fast paths.

Large maps run ``relu_numba``'s one-pass loops (``plan.compiled_relu``). Smaller ones keep
NumPy's forward, and their backward clears ``δy``'s bits with an integer AND instead of the
reference's ``np.where``, which casts and selects element by element: the same bits, a few
times faster. Every other activation is the reference function.
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import plan
from deltanet.ops import activations as reference
from deltanet.ops.activations import (
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax_backward,
    log_softmax_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    sigmoid_gradient,
    softmax_backward,
    softmax_forward,
    softplus_backward,
    softplus_forward,
    tanh_backward,
    tanh_forward,
)

__all__ = [
    "elu_backward",
    "elu_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid",
    "sigmoid_backward",
    "sigmoid_forward",
    "sigmoid_gradient",
    "softmax_backward",
    "softmax_forward",
    "softplus_backward",
    "softplus_forward",
    "tanh_backward",
    "tanh_forward",
]


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``ops.activations.relu_forward``, one pass when the map is large."""
    if not plan.compiled_relu(x, x):
        return reference.relu_forward(x)
    from deltanet.fast import relu_numba  # imports numba: only when it runs

    y = np.empty_like(x)
    relu_numba.relu_forward(x, y)
    return y, (y,)


def relu_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``ops.activations.relu_backward``: the same bits, one pass or a bit mask."""
    (y,) = cache
    dy = np.asarray(dy)
    if plan.compiled_relu(dy, y):
        from deltanet.fast import relu_numba

        dx = np.empty_like(y)
        relu_numba.relu_backward(dy, y, dx)
        return (dx,)
    if dy.itemsize not in (1, 2, 4, 8):
        return reference.relu_backward(dy, cache)
    # keep dy's bits where y > 0 and clear them elsewhere: an AND with an all-ones/all-zeros
    # mask is exact (NaN or inf in dy where y <= 0 still give +0)
    bits = np.dtype(f"u{dy.itemsize}")
    mask = np.asarray(y > 0).astype(bits)
    np.negative(mask, out=mask)  # 1 -> all ones, 0 -> 0
    return (np.bitwise_and(dy.view(bits), mask, out=mask).view(dy.dtype),)
