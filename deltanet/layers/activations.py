"""Activation layers: thin stateful wrappers of ``deltanet.ops.activations``.

Each takes a floating-point input of any shape (Softmax and LogSoftmax need the axis they
normalise over, so at least 2 dims), keeps the op's cache for ``backward`` and has no parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.layers.base import Layer, check_float_input
from deltanet.ops import activations as ops


class _Activation(Layer):
    """Shared forward/backward: subclasses give ``_forward(x)`` and ``_backward(dy, cache)``."""

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple]:  # pragma: no cover
        raise NotImplementedError

    def _backward(self, dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape -> y: same shape and dtype."""
        x = check_float_input(self, x)
        y, cache = self._forward(x)
        self._cache = (cache, y.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: the output's shape -> dx: the input's shape."""
        cache, shape = self._get_cache()
        if not isinstance(dy, np.ndarray) or dy.shape != shape:
            received = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(
                f"{self.label()}: expected dy of shape {shape} (the output's shape). "
                f"Received: {received}."
            )
        (dx,) = self._backward(dy, cache)
        return dx


class ReLU(_Activation):
    """``max(x, 0)``; gradient ``1[x > 0]``."""

    def _forward(self, x):
        return ops.relu_forward(x)

    _backward = staticmethod(ops.relu_backward)


class Sigmoid(_Activation):
    """``1 / (1 + e^{-x})``; gradient ``σ (1 - σ)``."""

    def _forward(self, x):
        return ops.sigmoid_forward(x)

    _backward = staticmethod(ops.sigmoid_backward)


class Tanh(_Activation):
    """``tanh(x)``; gradient ``1 - tanh²``."""

    def _forward(self, x):
        return ops.tanh_forward(x)

    _backward = staticmethod(ops.tanh_backward)


class LeakyReLU(_Activation):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope)

    def _forward(self, x):
        return ops.leaky_relu_forward(x, self.negative_slope)

    _backward = staticmethod(ops.leaky_relu_backward)

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class ELU(_Activation):
    """``x`` for ``x > 0``, ``alpha (e^x - 1)`` otherwise."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _number("ELU", "alpha", alpha)

    def _forward(self, x):
        return ops.elu_forward(x, self.alpha)

    _backward = staticmethod(ops.elu_backward)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Softplus(_Activation):
    """``log(1 + e^{βx}) / β``, and ``x`` itself where ``βx > threshold`` (as PyTorch)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = _number("Softplus", "beta", beta)
        if self.beta <= 0:
            raise ValueError(f"Softplus: beta must be a positive number. Received: {beta!r}.")
        self.threshold = _number("Softplus", "threshold", threshold)

    def _forward(self, x):
        return ops.softplus_forward(x, self.beta, self.threshold)

    _backward = staticmethod(ops.softplus_backward)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class Softmax(_Activation):
    """``e^x / Σ e^x`` along ``axis`` (the class axis 1 of channels-first data by default)."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = _axis("Softmax", axis)

    def _forward(self, x):
        return ops.softmax_forward(x, _check_axis(self, x, self.axis))

    _backward = staticmethod(ops.softmax_backward)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class LogSoftmax(_Activation):
    """``x - log Σ e^x`` along ``axis`` (feed it to a negative log-likelihood)."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = _axis("LogSoftmax", axis)

    def _forward(self, x):
        return ops.log_softmax_forward(x, _check_axis(self, x, self.axis))

    _backward = staticmethod(ops.log_softmax_backward)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


def _number(cls: str, arg: str, value: Any) -> float:
    """A finite real ``value`` as a Python float (so that float32 inputs stay float32)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{cls}: {arg} must be a number. Received: {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"{cls}: {arg} must be finite. Received: {value!r}.")
    return float(value)


def _axis(cls: str, axis: Any) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{cls}: axis must be an int. Received: {axis!r}.")
    return int(axis)


def _check_axis(layer: Layer, x: np.ndarray, axis: int) -> int:
    """The input needs at least 2 dims and an ``axis`` inside them."""
    if x.ndim < 2 or not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"{layer.label()}: expected input with at least 2 dims, e.g. (N, C, ...), that has "
            f"axis {axis}. Received: {x.shape}."
        )
    return axis
