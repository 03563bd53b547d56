"""Dropout layer: inverted dropout in training mode, the identity in eval mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.init import RngLike, as_rng
from deltanet.layers.base import Layer
from deltanet.layers.registry import register_layer
from deltanet.ops.dropout import dropout_backward, dropout_forward


@register_layer
class Dropout(Layer):
    """Zero each value with probability ``p`` while training, scaling the rest by 1/(1-p).

    Input: any shape ``(N, ...)``; output: same shape and dtype. The layer owns its Generator,
    so a seeded layer draws the same masks on every run.

    Raises TypeError or ValueError for a ``p`` that is not a number in [0, 1).
    """

    def __init__(self, p: float = 0.5, *, rng: RngLike = None) -> None:
        super().__init__()
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.number)):
            raise TypeError(f"Dropout: p must be a float in [0, 1). Received: p={p!r}.")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1). Received: p={p!r}.")
        self.p = float(p)
        self.rng = as_rng(rng)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if self.training and self.p > 0:
            return dropout_forward(x, self.p, self.rng)
        return x, (None,)  # eval mode: the identity (the scale was already applied while training)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        (dx,) = dropout_backward(dy, cache)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}
