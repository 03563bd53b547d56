"""Max and mean pooling for any number of spatial dims, forward and backward side by side.

Inputs are channels-first ``(N, C, *spatial)``; the number of spatial dims is ``x.ndim - 2``.
Every op follows PyTorch exactly: the output size (``ceil_mode`` included), the rule
``padding <= kernel_size // 2``, the divisor of mean pooling and the cell that max pooling picks
(the first maximum in window order; a NaN always wins, the last NaN of the window).

Backward ("upsampling" the error):
- mean pooling spreads each ``δ`` evenly over its window: ``δx[i] += δy[o] / |window(o)|``;
- max pooling routes each ``δ`` entirely to the argmax: ``δx[argmax(o)] += δy[o]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from deltanet.ops.window import (
    Window,
    as_tuple,
    output_size,
    pad,
    sliding_windows,
    unpad,
    window_adjoint,
)


def pool_window(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    ceil_mode: bool,
) -> Window:
    """Validate the hyper-parameters; the pooling's ``Window``.

    Its ``pads`` hold the user's padding plus, with ``ceil_mode``, the extra cells on the right
    that the last window runs over (they count as padding: -inf for max, 0 for mean).
    """
    nd = x.ndim - 2
    if nd < 1:
        raise ValueError(f"pooling expects input of shape (N, C, *spatial). Received: {x.shape}.")
    kernel = as_tuple(kernel_size, nd, "kernel_size")
    strides = kernel if stride is None else as_tuple(stride, nd, "stride")
    dil = as_tuple(dilation, nd, "dilation")
    pads = as_tuple(padding, nd, "padding")
    for name, values in (("kernel_size", kernel), ("stride", strides), ("dilation", dil)):
        if min(values) < 1:
            raise ValueError(f"{name} must be positive. Received: {name}={values}.")
    if any(p < 0 or p > k // 2 for p, k in zip(pads, kernel)):
        raise ValueError(
            "padding must be non-negative and at most half of kernel_size. "
            f"Received: padding={pads}, kernel_size={kernel}."
        )
    spatial = x.shape[2:]
    out = tuple(
        output_size(n, k, s, p, p, d, ceil_mode)
        for n, k, s, p, d in zip(spatial, kernel, strides, pads, dil)
    )
    if min(out) < 1:
        raise ValueError(
            f"kernel_size={kernel} (dilation={dil}) is larger than the padded input: "
            f"input size {tuple(spatial)}, padding={pads}. Received input of shape {x.shape}."
        )
    # cells past in + 2p that the last (ceil_mode) window reaches: padded as well
    extra = (
        max((o - 1) * s + d * (k - 1) + 1 - (n + 2 * p), 0)
        for o, s, d, k, n, p in zip(out, strides, dil, kernel, spatial, pads)
    )
    return Window(kernel, strides, dil, tuple((p, p + e) for p, e in zip(pads, extra)), out)


# --- max pooling ------------------------------------------------------------------------------


class MaxPoolCache(NamedTuple):
    """What ``max_pool_backward`` needs: the argmax, or the input to find it from."""

    argmax: np.ndarray | None  # flat kernel offset per output; None: not computed (inference)
    window: Window
    padded_shape: tuple[int, ...]  # of x
    dtype: np.dtype
    x: np.ndarray | None  # the input, kept only while the argmax is None


def first_real_offset(win: Window) -> np.ndarray:
    """Flat offset of each window's first non-padding cell, shape ``out``.

    PyTorch starts its scan there, so a window of -inf inputs routes δ to that cell, not to the
    padding. A window that lies wholly in the padding (possible with dilation) routes it nowhere.
    """
    first = np.zeros(win.out, dtype=np.intp)
    place = 1
    for axis in reversed(range(len(win.kernel))):
        k, s, d, o = win.kernel[axis], win.stride[axis], win.dilation[axis], win.out[axis]
        start = np.arange(o) * s - win.pads[axis][0]  # first input index (negative: padding)
        k0 = np.clip(-(start // d), 0, k - 1)  # smallest k with start + k*d >= 0
        shape = [1] * len(win.kernel)
        shape[axis] = o
        first += (k0 * place).reshape(shape)
        place *= k
    return first


def _window_cells(x: np.ndarray, win: Window) -> list[np.ndarray]:
    """One ``(N, C, *out)`` view per kernel offset ``k`` of ``x`` padded with -inf, in window
    order: ``xp[o*s + k*d]``."""
    xp = pad(x, win.pads, -np.inf)
    windows = sliding_windows(xp, win.kernel, win.stride, win.dilation, win.out)
    return [windows[(Ellipsis,) + k] for k in win.offsets()]


def _max_of(cells: list[np.ndarray]) -> np.ndarray:
    """The elementwise maximum of the window cells."""
    y = cells[0].copy()
    for v in cells[1:]:
        np.maximum(y, v, out=y)  # propagates NaN, as PyTorch does
    return y


def _argmax_offset(cells: list[np.ndarray], y: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Flat kernel offset of each window's maximum ``y``, as PyTorch's scan picks it.

    Two vectorised passes instead of one branchy scan: ``y`` is known, so the argmax is the
    first offset whose cell equals it (written backwards so that the first tie lands last).
    """
    arg = np.empty(y.shape, dtype=np.min_scalar_type(len(cells)))
    arg[...] = first
    hit = np.empty(y.shape, dtype=bool)
    for flat in reversed(range(len(cells))):
        np.equal(cells[flat], y, out=hit)
        np.copyto(arg, flat, where=hit, casting="unsafe")
    # all-(-inf) windows: PyTorch keeps its starting cell, the first one that is not padding
    np.copyto(arg, first, where=np.isneginf(y), casting="unsafe")
    if np.isnan(y).any():  # NaN != NaN left NaN windows at `first`; PyTorch takes the last NaN
        for flat, v in enumerate(cells):
            np.copyto(arg, flat, where=np.isnan(v), casting="unsafe")
    return arg


def max_pool_forward(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    argmax: bool = True,
) -> tuple[np.ndarray, MaxPoolCache]:
    """``y[o] = max over the window of o``: ``(N, C, *in) -> (N, C, *out)``.

    The argmax is kept as a flat kernel offset per output, chosen as PyTorch's scan
    (``if val > max or isnan(val)``) chooses it: the first maximum in window order, the last NaN.
    ``argmax=False`` (inference) computes ``y`` alone, the same values; the cache then keeps
    ``x``, and a backward pass finds the argmax (``max_pool_argmax``).
    """
    win = pool_window(x, kernel_size, stride, padding, dilation, ceil_mode)
    cells = _window_cells(x, win)
    y = _max_of(cells)
    padded_shape = win.padded_shape(x.shape)
    if not argmax:
        return y, MaxPoolCache(None, win, padded_shape, x.dtype, x)
    arg = _argmax_offset(cells, y, first_real_offset(win))
    return y, MaxPoolCache(arg, win, padded_shape, x.dtype, None)


def max_pool_argmax(cache: MaxPoolCache) -> MaxPoolCache:
    """The cache with its argmax, found from the kept input if the forward pass skipped it.

    A caller that runs several backward passes after one inference forward (a Jacobian) keeps
    the result, so the argmax is found once.
    """
    if cache.argmax is not None:
        return cache
    assert cache.x is not None, "a cache without the argmax keeps the input"
    cells = _window_cells(cache.x, cache.window)
    arg = _argmax_offset(cells, _max_of(cells), first_real_offset(cache.window))
    return cache._replace(argmax=arg, x=None)


def max_pool_backward(dy: np.ndarray, cache: MaxPoolCache) -> tuple[np.ndarray]:
    """``δx[argmax(o)] += δy[o]``: each δ goes whole to its window's maximum; ``(dx,)``."""
    arg, win, padded_shape, dtype, _ = max_pool_argmax(cache)
    dxp = np.zeros(padded_shape, dtype=dtype)
    for flat, k in enumerate(win.offsets()):
        target = dxp[(Ellipsis,) + win.offset_slices(k)]
        np.add(target, dy, out=target, where=arg == flat)  # overlapping windows add up
    return (np.ascontiguousarray(unpad(dxp, win.pads)),)


# --- mean pooling -----------------------------------------------------------------------------


def _avg_divisor(
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    out: Sequence[int],
    count_include_pad: bool,
    dtype: np.dtype,
) -> np.ndarray:
    """``|window(o)|``, shape ``out``, as PyTorch counts it (a product of one count per axis).

    count_include_pad: the window clipped to the padded input ``[-p, n + p)`` (cells that a
    ceil_mode window hangs past that do not count); otherwise only the real cells ``[0, n)``.
    """
    divisor = np.ones((1,) * len(out), dtype=dtype)
    for axis, (n, k, s, p, o) in enumerate(zip(spatial, kernel, stride, padding, out)):
        start = np.arange(o) * s - p
        if count_include_pad:
            count = np.minimum(start + k, n + p) - start
        else:
            count = np.minimum(start + k, n) - np.maximum(start, 0)
        shape = [1] * len(out)
        shape[axis] = o
        divisor = divisor * np.maximum(count, 1).reshape(shape).astype(dtype)
    return divisor


class AvgPoolCache(NamedTuple):
    """What ``avg_pool_backward`` needs."""

    divisor: np.ndarray  # |window(o)|, shape out
    window: Window
    padded_shape: tuple[int, ...]  # of x
    dtype: np.dtype


def avg_pool_forward(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> tuple[np.ndarray, AvgPoolCache]:
    """``y[o] = Σ_window x / |window(o)|`` (padding is zeros): ``(N, C, *in) -> (N, C, *out)``."""
    win = pool_window(x, kernel_size, stride, padding, 1, ceil_mode)
    windows = sliding_windows(pad(x, win.pads, 0.0), win.kernel, win.stride, win.dilation, win.out)
    total = np.zeros((*x.shape[:2], *win.out), dtype=x.dtype)
    for k in win.offsets():
        total += windows[(Ellipsis,) + k]
    user_pad = tuple(lo for lo, _ in win.pads)
    divisor = _avg_divisor(
        x.shape[2:], win.kernel, win.stride, user_pad, win.out, count_include_pad, x.dtype
    )
    y = np.divide(total, divisor, out=total)
    return y, AvgPoolCache(divisor, win, win.padded_shape(x.shape), x.dtype)


def avg_pool_backward(dy: np.ndarray, cache: AvgPoolCache) -> tuple[np.ndarray]:
    """``δx[i] = Σ_{o: i in window(o)} δy[o] / |window(o)|``; ``(dx,)``."""
    divisor, win, padded_shape, dtype = cache
    share = (dy / divisor).astype(dtype, copy=False)  # the δ each cell of window o receives
    nd = len(win.kernel)
    dwin = np.broadcast_to(share.reshape(share.shape + (1,) * nd), share.shape + win.kernel)
    dxp = window_adjoint(dwin, win, np.zeros(padded_shape, dtype=dtype))
    return (np.ascontiguousarray(unpad(dxp, win.pads)),)


# --- global pooling ---------------------------------------------------------------------------


def global_avg_pool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``y = mean over all spatial axes``: ``(N, C, *spatial) -> (N, C, 1, ..., 1)``."""
    if x.ndim < 3:
        raise ValueError(f"global pooling expects (N, C, *spatial). Received: {x.shape}.")
    y = np.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True, dtype=x.dtype)
    return y, (x.shape, x.dtype)


def global_avg_pool_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``δx = δy / (number of spatial cells)``, broadcast over every cell; ``(dx,)``."""
    x_shape, dtype = cache
    count = int(np.prod(x_shape[2:]))
    dx = np.empty(x_shape, dtype=dtype)
    dx[...] = dy / count
    return (dx,)


class GlobalMaxPoolCache(NamedTuple):
    """What ``global_max_pool_backward`` needs."""

    argmax: np.ndarray  # flat spatial index per (sample, channel)
    x_shape: tuple[int, ...]
    dtype: np.dtype


def global_max_pool_forward(x: np.ndarray) -> tuple[np.ndarray, GlobalMaxPoolCache]:
    """``y = max over all spatial axes``: ``(N, C, *spatial) -> (N, C, 1, ..., 1)``.

    Ties go to the first cell (C order); a NaN wins, the last one, as PyTorch's adaptive max pool.
    """
    if x.ndim < 3:
        raise ValueError(f"global pooling expects (N, C, *spatial). Received: {x.shape}.")
    flat = x.reshape(*x.shape[:2], -1)
    arg = np.argmax(flat, axis=-1)
    nan = np.isnan(np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0])
    if nan.any():  # np.argmax picks the first NaN, PyTorch the last
        last = flat.shape[-1] - 1 - np.argmax(np.isnan(flat[..., ::-1]), axis=-1)
        arg = np.where(nan, last, arg)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)
    return y.reshape(*x.shape[:2], *(1,) * (x.ndim - 2)), GlobalMaxPoolCache(arg, x.shape, x.dtype)


def global_max_pool_backward(dy: np.ndarray, cache: GlobalMaxPoolCache) -> tuple[np.ndarray]:
    """``δx[argmax] = δy``, zero elsewhere; ``(dx,)``."""
    arg, x_shape, dtype = cache
    dx = np.zeros((*x_shape[:2], int(np.prod(x_shape[2:]))), dtype=dtype)
    np.put_along_axis(dx, arg[..., None], dy.reshape(*x_shape[:2], 1), axis=-1)
    return (dx.reshape(x_shape),)
