"""Activation layers: thin stateful wrappers of ``deltanet.ops.activations``.

Each takes a floating-point input of any shape (Softmax and LogSoftmax need the axis they
normalise over, so at least 2 dims), keeps the op's cache for ``backward`` and has no parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.fast import activations as ops
from deltanet.layers.base import Layer
from deltanet.layers.registry import register_layer
from deltanet.layers.validate import number


class _Activation(Layer):
    """Shared backward: subclasses give ``_forward(x) -> (y, cache)`` and ``_op_backward``."""

    def _op_backward(self, dy: np.ndarray, cache: Any) -> tuple[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        """dy: the output's shape -> dx: the input's shape."""
        (dx,) = self._op_backward(dy, cache)
        return dx


@register_layer
class ReLU(_Activation):
    """``max(x, 0)``; gradient ``1[x > 0]``."""

    def _forward(self, x):
        return ops.relu_forward(x)

    _op_backward = staticmethod(ops.relu_backward)


@register_layer
class Sigmoid(_Activation):
    """``1 / (1 + e^{-x})``; gradient ``σ (1 - σ)``."""

    def _forward(self, x):
        return ops.sigmoid_forward(x)

    _op_backward = staticmethod(ops.sigmoid_backward)


@register_layer
class Tanh(_Activation):
    """``tanh(x)``; gradient ``1 - tanh²``."""

    def _forward(self, x):
        return ops.tanh_forward(x)

    _op_backward = staticmethod(ops.tanh_backward)


@register_layer
class LeakyReLU(_Activation):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise.

    Raises TypeError or ValueError for a ``negative_slope`` that is not a finite number.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = number("LeakyReLU", "negative_slope", negative_slope)

    def _forward(self, x):
        return ops.leaky_relu_forward(x, self.negative_slope)

    _op_backward = staticmethod(ops.leaky_relu_backward)

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


@register_layer
class ELU(_Activation):
    """``x`` for ``x > 0``, ``alpha (e^x - 1)`` otherwise.

    Raises TypeError or ValueError for an ``alpha`` that is not a finite number.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = number("ELU", "alpha", alpha)

    def _forward(self, x):
        return ops.elu_forward(x, self.alpha)

    _op_backward = staticmethod(ops.elu_backward)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@register_layer
class Softplus(_Activation):
    """``log(1 + e^{βx}) / β``, and ``x`` itself where ``βx > threshold`` (as PyTorch).

    Raises ValueError for a ``beta`` that is not a positive number, TypeError or ValueError for a
    ``threshold`` that is not a finite number.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = number("Softplus", "beta", beta)
        if self.beta <= 0:
            raise ValueError(f"Softplus: beta must be a positive number. Received: {beta!r}.")
        self.threshold = number("Softplus", "threshold", threshold)

    def _forward(self, x):
        return ops.softplus_forward(x, self.beta, self.threshold)

    _op_backward = staticmethod(ops.softplus_backward)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


@register_layer
class Softmax(_Activation):
    """``e^x / Σ e^x`` along ``axis`` (the class axis 1 of channels-first data by default).

    Raises TypeError for an ``axis`` that is not an int; when running, ValueError for an input
    without that axis.
    """

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = _axis("Softmax", axis)

    def _forward(self, x):
        return ops.softmax_forward(x, _check_axis(self, x, self.axis))

    _op_backward = staticmethod(ops.softmax_backward)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


@register_layer
class LogSoftmax(_Activation):
    """``x - log Σ e^x`` along ``axis`` (feed it to a negative log-likelihood).

    Raises TypeError for an ``axis`` that is not an int; when running, ValueError for an input
    without that axis.
    """

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = _axis("LogSoftmax", axis)

    def _forward(self, x):
        return ops.log_softmax_forward(x, _check_axis(self, x, self.axis))

    _op_backward = staticmethod(ops.log_softmax_backward)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


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
