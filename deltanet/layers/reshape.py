"""Flatten and Reshape layers: change the shape, keep the data (and the batch axis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deltanet.layers.base import Layer
from deltanet.layers.registry import register_layer
from deltanet.ops.reshape import (
    flatten_backward,
    flatten_dims,
    flatten_forward,
    reshape_backward,
    reshape_forward,
    resolve_shape,
)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


@register_layer
class Flatten(Layer):
    """Merge axes ``start_dim..end_dim`` into one, as ``torch.nn.Flatten``.

    Input ``(N, C, H, W)`` -> output ``(N, C*H*W)`` with the defaults.

    Raises TypeError or ValueError for axes that are not ints, or that the input does not have.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not _is_int(v):
                raise TypeError(f"Flatten: {name} must be an int. Received: {name}={v!r}.")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        try:
            flatten_dims(x.ndim, self.start_dim, self.end_dim)
        except ValueError as err:
            raise ValueError(f"{self.label()}: {err} Input shape: {x.shape}.") from None
        return flatten_forward(x, self.start_dim, self.end_dim)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        (dx,) = flatten_backward(dy, cache)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


@register_layer
class Reshape(Layer):
    """Reshape each sample to ``shape`` (the batch axis is kept; one ``-1`` is inferred).

    Input ``(N, *in_shape)`` -> output ``(N, *shape)`` with ``prod(shape) == prod(in_shape)``.

    Raises TypeError or ValueError for a ``shape`` that is not ints, has more than one ``-1``, or
    does not hold the input's number of values.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        items = tuple(shape) if isinstance(shape, (tuple, list)) else None
        if items is None or not all(_is_int(s) for s in items):
            raise TypeError(f"Reshape: shape must be a tuple of ints. Received: shape={shape!r}.")
        if any(s == 0 or s < -1 for s in items) or sum(s == -1 for s in items) > 1:
            raise ValueError(
                "Reshape: shape must hold positive ints and at most one -1. "
                f"Received: shape={shape!r}."
            )
        self.shape = tuple(int(s) for s in items)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if x.ndim < 1:
            raise ValueError(f"{self.label()}: expected input of shape (N, ...). Received: ().")
        try:
            resolve_shape(x.shape[1:], self.shape)
        except ValueError as err:
            raise ValueError(f"{self.label()}: {err} Input shape: {x.shape}.") from None
        return reshape_forward(x, self.shape)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        (dx,) = reshape_backward(dy, cache)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}
