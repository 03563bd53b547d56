"""Flatten and reshape: the data are not touched, only the shape, so backward undoes the reshape.

Forward:  ``y = x.reshape(new_shape)`` (a view whenever NumPy can make one).
Backward: ``dx = dy.reshape(x.shape)``: a reshape is a permutation-free relabelling of indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def flatten_dims(ndim: int, start_dim: int, end_dim: int) -> tuple[int, int]:
    """``(start, end)`` made non-negative for an ``ndim``-dim input; ValueError if out of range."""
    if ndim < 1:
        raise ValueError(f"flatten needs an input with at least 1 dim. Received: {ndim} dims.")
    start = start_dim + ndim if start_dim < 0 else start_dim
    end = end_dim + ndim if end_dim < 0 else end_dim
    if not (0 <= start < ndim and 0 <= end < ndim) or start > end:
        raise ValueError(
            f"flatten dims out of range for an input of {ndim} dims (need "
            f"-{ndim} <= start_dim <= end_dim < {ndim} after wrapping). "
            f"Received: start_dim={start_dim}, end_dim={end_dim}."
        )
    return start, end


def flatten_forward(
    x: np.ndarray, start_dim: int = 1, end_dim: int = -1
) -> tuple[np.ndarray, tuple]:
    """Merge axes ``start_dim..end_dim`` (PyTorch's flatten). x: (N, C, H, W) -> y: (N, C*H*W)."""
    start, end = flatten_dims(x.ndim, start_dim, end_dim)
    # An explicit product, not -1, so that zero-size inputs flatten too.
    shape = (*x.shape[:start], math.prod(x.shape[start : end + 1]), *x.shape[end + 1 :])
    return x.reshape(shape), (x.shape,)


def flatten_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy`` with x's shape. dy: flattened -> (dx,)."""
    (x_shape,) = cache
    return (dy.reshape(x_shape),)


def resolve_shape(sample_shape: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` with its one ``-1`` filled in so it holds ``prod(sample_shape)`` values."""
    size = math.prod(sample_shape)
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    known = math.prod(s for s in shape if s != -1)
    bad = len(unknown) > 1 or any(s < -1 for s in shape)
    if not bad and unknown:
        bad = known == 0 or size % known != 0
        if not bad:
            shape = shape[: unknown[0]] + (size // known,) + shape[unknown[0] + 1 :]
    if bad or math.prod(shape) != size:
        raise ValueError(
            f"cannot reshape a sample of shape {tuple(sample_shape)} ({size} values) into {shape}."
        )
    return shape


def reshape_forward(x: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, tuple]:
    """Reshape each sample to ``shape`` (batch axis kept; one ``-1`` allowed). x: (N, ...) -> y."""
    target = resolve_shape(x.shape[1:], shape)
    return x.reshape((x.shape[0], *target)), (x.shape,)


def reshape_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy`` with x's shape. dy: (N, *shape) -> (dx,)."""
    (x_shape,) = cache
    return (dy.reshape(x_shape),)
