"""Activation functions: forward and hand-derived backward side by side.

Every ``*_forward(x, ...)`` returns ``(y, cache)`` and every ``*_backward(dy, cache)`` returns
``(dx,)``. All of them keep the input's dtype and are numerically stable: no ``exp`` ever sees a
positive argument large enough to overflow, so inputs like ``|x| = 1000`` in float32 give finite,
exact results. An ``exp`` of a very negative argument underflows to 0, which *is* the correctly
rounded answer, so underflow alone is silenced locally (``np.errstate(under="ignore")``); overflow
and invalid operations are never produced and stay visible under ``np.errstate(all="raise")``.
"""

from __future__ import annotations

import numpy as np

# --- sigmoid: σ(x) = 1 / (1 + e^{-x}), σ' = σ (1 - σ) ------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + e^{-x})`` on any array-like (integers become float64)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return sigmoid_forward(x)[0]


def sigmoid_gradient(x: np.ndarray) -> np.ndarray:
    """``σ'(x) = σ(x) (1 - σ(x))`` on any array-like (the classic exercise's sigmoidGradient)."""
    s = sigmoid(x)
    return s * (1 - s)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``y = σ(x)``, any shape; the cache is the output (σ' needs only σ)."""
    with np.errstate(under="ignore"):
        # Two branches share e = e^{-|x|} <= 1: σ(x) = 1/(1+e) for x >= 0, e/(1+e) for x < 0.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1, e) / (1 + e)
    return y, (y,)


def sigmoid_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy σ (1 - σ)``."""
    (y,) = cache
    with np.errstate(under="ignore"):
        return (dy * y * (1 - y),)


# --- tanh: tanh' = 1 - tanh² -------------------------------------------------------------------


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``y = tanh(x)``, any shape; the cache is the output."""
    y = np.tanh(x)
    return y, (y,)


def tanh_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy (1 - y²)``."""
    (y,) = cache
    with np.errstate(under="ignore"):
        return (dy * (1 - y * y),)


# --- ReLU: relu' = 1[x > 0] (0 at the kink, as PyTorch) -----------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``y = max(x, 0)``, any shape; the cache is the output (y > 0 exactly where x > 0)."""
    y = np.maximum(x, 0)
    return y, (y,)


def relu_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy 1[x > 0]``, selected, not multiplied: a NaN or inf in ``dy`` where ``y <= 0``
    gives +0, as PyTorch has it."""
    (y,) = cache
    dy = np.asarray(dy)
    return (np.where(y > 0, dy, 0).astype(dy.dtype, copy=False),)


# --- leaky ReLU: y = x for x > 0, slope·x otherwise ---------------------------------------------


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01) -> tuple[np.ndarray, tuple]:
    """``y = x if x > 0 else negative_slope * x``, any shape."""
    slope = float(negative_slope)  # a Python float keeps float32 float32 (NEP 50)
    with np.errstate(under="ignore"):
        y = np.where(x > 0, x, x * slope)
    return y, (x > 0, slope)


def leaky_relu_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy if x > 0 else negative_slope * dy``."""
    positive, slope = cache
    with np.errstate(under="ignore"):
        return (np.where(positive, dy, dy * slope),)


# --- ELU: y = x for x > 0, α (e^x - 1) otherwise; y' = α e^x on the negative side ---------------


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, tuple]:
    """``y = x if x > 0 else alpha * (e^x - 1)``, any shape."""
    alpha = float(alpha)
    with np.errstate(under="ignore"):
        # expm1 is exact near 0; clipping at 0 keeps e^x of the unused positive branch from
        # overflowing (np.where evaluates both branches).
        neg = np.minimum(x, 0)
        y = np.where(x > 0, x, alpha * np.expm1(neg))
    return y, (x, alpha)


def elu_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy if x > 0 else dy * alpha * e^x`` (e^x from x, not y + α, to stay exact)."""
    x, alpha = cache
    with np.errstate(under="ignore"):
        return (np.where(x > 0, dy, dy * (alpha * np.exp(np.minimum(x, 0)))),)


# --- softplus: y = log(1 + e^{βx}) / β, linear above the threshold (as PyTorch) ----------------


def softplus_forward(
    x: np.ndarray, beta: float = 1.0, threshold: float = 20.0
) -> tuple[np.ndarray, tuple]:
    """``y = log(1 + e^{βx}) / β``, and ``y = x`` where ``βx > threshold``; any shape."""
    beta, threshold = float(beta), float(threshold)
    bx = x * beta
    with np.errstate(under="ignore"):
        # clip at the threshold so that e^{βx} of the linear branch never overflows
        y = np.where(bx > threshold, x, np.log1p(np.exp(np.minimum(bx, threshold))) / beta)
    return y, (bx, threshold)


def softplus_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy σ(βx)`` (``dy`` itself on the linear part above the threshold)."""
    bx, threshold = cache
    s = sigmoid_forward(bx)[0]
    return (np.where(bx > threshold, dy, dy * s),)


# --- softmax along an axis: y_k = e^{x_k} / Σ_j e^{x_j} -----------------------------------------


def softmax_forward(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, tuple]:
    """``y = e^x / Σ e^x`` along ``axis`` (any shape with that axis); the cache is the output."""
    with np.errstate(under="ignore"):
        # subtracting the max changes nothing mathematically and keeps every exponent <= 0
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis)


def softmax_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = y (dy - Σ_k dy_k y_k)``: the Jacobian ``diag(y) - y yᵀ`` applied to ``dy``."""
    y, axis = cache
    with np.errstate(under="ignore"):
        return (y * (dy - (dy * y).sum(axis=axis, keepdims=True)),)


# --- log-softmax: y = x - logsumexp(x) ----------------------------------------------------------


def log_softmax_forward(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, tuple]:
    """``y = x - log Σ e^x`` along ``axis`` (through the max-shifted logsumexp)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    with np.errstate(under="ignore"):
        y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return y, (y, axis)


def log_softmax_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy - softmax(x) Σ_k dy_k``, with ``softmax(x) = e^y``."""
    y, axis = cache
    with np.errstate(under="ignore"):
        return (dy - np.exp(y) * dy.sum(axis=axis, keepdims=True),)
