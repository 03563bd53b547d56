"""Pooling with ``ops/pool.py``'s signatures: max pooling through numba when ``enabled()``.

NumPy needs one pass per kernel offset to find the maximum and two more to find which offset
held it; ``pool_numba`` reads each window once and picks the same cell (the first maximum in
window order, the last NaN), so the outputs and the cached argmax are the reference's, bit for
bit. Mean and global pooling are the reference functions (one pass each already).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deltanet.fast import enabled, lift3d, plan
from deltanet.ops import pool as reference
from deltanet.ops.pool import (
    MaxPoolCache,
    avg_pool_backward,
    avg_pool_forward,
    first_real_offset,
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
    pool_window,
)
from deltanet.ops.window import Window, pad, unpad

__all__ = [
    "avg_pool_backward",
    "avg_pool_forward",
    "global_avg_pool_backward",
    "global_avg_pool_forward",
    "global_max_pool_backward",
    "global_max_pool_forward",
    "max_pool_argmax",
    "max_pool_backward",
    "max_pool_forward",
]


def _planes(a: np.ndarray) -> np.ndarray:
    """``(N, C, *spatial)`` as 3-D pooling over ``(N*C, D, H, W)``, as the kernels take it."""
    return a.reshape(-1, *lift3d(a.shape[2:]))


def _max_and_argmax(x: np.ndarray, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """``y`` and the argmax offsets through the numba kernel."""
    from deltanet.fast import pool_numba  # imports numba: only once it runs

    xp = np.ascontiguousarray(pad(x, win.pads, -np.inf))
    y = np.empty((*x.shape[:2], *win.out), dtype=x.dtype)
    arg = np.empty(y.shape, dtype=np.min_scalar_type(np.prod(win.kernel)))
    kernel = lift3d(win.kernel)
    if plan.unrolled_max_pool(kernel):
        forward = pool_numba.max_pool_forward_for(kernel)
    else:
        forward = pool_numba.max_pool3d_forward
    forward(
        _planes(xp), first_real_offset(win).reshape(lift3d(win.out)), kernel,
        lift3d(win.stride), lift3d(win.dilation), _planes(y), _planes(arg), x.dtype.type(-np.inf),
    )  # fmt: skip
    return y, arg


def max_pool_forward(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    argmax: bool = True,
) -> tuple[np.ndarray, MaxPoolCache]:
    """``ops.pool.max_pool_forward``, one pass over each window."""
    if not enabled():
        return reference.max_pool_forward(
            x, kernel_size, stride, padding, dilation, ceil_mode, argmax
        )
    win = pool_window(x, kernel_size, stride, padding, dilation, ceil_mode)
    if argmax:
        y, arg = _max_and_argmax(x, win)
        return y, MaxPoolCache(arg, win, win.padded_shape(x.shape), x.dtype, None)
    from deltanet.fast import pool_numba

    xp = np.ascontiguousarray(pad(x, win.pads, -np.inf))
    y = np.empty((*x.shape[:2], *win.out), dtype=x.dtype)
    pool_numba.max_pool3d_values(
        _planes(xp), lift3d(win.kernel), lift3d(win.stride), lift3d(win.dilation), _planes(y),
        x.dtype.type(-np.inf),
    )  # fmt: skip
    return y, MaxPoolCache(None, win, win.padded_shape(x.shape), x.dtype, x)


def max_pool_argmax(cache: MaxPoolCache) -> MaxPoolCache:
    """``ops.pool.max_pool_argmax``: the cache with its argmax, found in one pass if missing."""
    if not enabled():
        return reference.max_pool_argmax(cache)
    if cache.argmax is not None:
        return cache
    assert cache.x is not None, "a cache without the argmax keeps the input"
    return cache._replace(argmax=_max_and_argmax(cache.x, cache.window)[1], x=None)


def max_pool_backward(dy: np.ndarray, cache: MaxPoolCache) -> tuple[np.ndarray]:
    """``ops.pool.max_pool_backward``: each δ added to its window's maximum in one pass."""
    if not enabled():
        return reference.max_pool_backward(dy, cache)
    from deltanet.fast import pool_numba

    if cache.argmax is None:  # a forward pass without the argmax (inference): find it now
        cache = max_pool_argmax(cache)
    arg, win, padded_shape, dtype, _ = cache
    assert arg is not None
    dxp = np.zeros(padded_shape, dtype=dtype)
    pool_numba.max_pool3d_backward(
        _planes(np.ascontiguousarray(dy, dtype=dtype)), _planes(arg), lift3d(win.kernel),
        lift3d(win.stride), lift3d(win.dilation), _planes(dxp),
    )  # fmt: skip
    return (np.ascontiguousarray(unpad(dxp, win.pads)),)
