"""Fully connected (dense) layer: ``y = x Wᵀ + b`` and its hand-derived backward pass.

Shapes follow PyTorch's ``Linear``: ``x (N, in)``, ``w (out, in)``, ``b (out,)``, ``y (N, out)``,
so weights move between the two 1:1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DenseCache(NamedTuple):
    """What ``dense_backward`` needs from ``dense_forward``."""

    x: np.ndarray
    w: np.ndarray
    has_bias: bool


def dense_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
) -> tuple[np.ndarray, DenseCache]:
    """``y = x Wᵀ + b``.

    x: (N, in), w: (out, in), b: (out,) or None -> y: (N, out); cache for ``dense_backward``.
    """
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"dense_forward: expected x of shape (N, in) and w of shape (out, in) with the same "
            f"in. Received: x {x.shape}, w {w.shape}."
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(
            f"dense_forward: expected b of shape ({w.shape[0]},). Received: {b.shape}."
        )
    # y_nj = sum_i x_ni w_ji + b_j: one matmul over the whole batch
    y = x @ w.T
    if b is not None:
        y += b
    return y, DenseCache(x, w, b is not None)


def dense_backward(
    dy: np.ndarray, cache: DenseCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of ``dense_forward`` given ``dy = dL/dy``.

    dy: (N, out) -> dx: (N, in) (None when not ``input_grad``), dw: (out, in), db: (out,)
    (None when the forward had no bias).
    """
    x, w, has_bias = cache
    # δx = δy W        (dL/dx_ni = sum_j dy_nj w_ji)
    dx = dy @ w if input_grad else None
    # ∂L/∂W = δyᵀ x    (dL/dw_ji = sum_n dy_nj x_ni: the batch is summed by the matmul)
    dw = dy.T @ x
    # ∂L/∂b = Σ_n δy   (b is added to every row of the batch)
    db = dy.sum(axis=0) if has_bias else None
    return dx, dw, db
