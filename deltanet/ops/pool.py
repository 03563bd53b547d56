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

import itertools
from collections.abc import Sequence

import numpy as np

from deltanet import compiled
from deltanet.ops.window import (
    Pads,
    as_tuple,
    lift3d,
    output_size,
    pad,
    sliding_windows,
    unpad,
    window_adjoint,
)

Geometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], Pads]


def _geometry(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    ceil_mode: bool,
) -> Geometry:
    """Validate the hyper-parameters; ``(kernel, stride, dilation, out, pads)``.

    ``pads`` holds the user's padding plus, with ``ceil_mode``, the extra cells on the right that
    the last window runs over (they count as padding: -inf for max, 0 for mean).
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
    return kernel, strides, dil, out, tuple((p, p + e) for p, e in zip(pads, extra))


def _offset_slices(
    k: Sequence[int], stride: Sequence[int], dilation: Sequence[int], out: Sequence[int]
) -> tuple[slice, ...]:
    """Spatial slices of the padded input that kernel offset ``k`` visits: ``o*s + k*d``."""
    return tuple(
        slice(ki * d, ki * d + s * (o - 1) + 1, s) for ki, d, s, o in zip(k, dilation, stride, out)
    )


# --- max pooling ------------------------------------------------------------------------------


def _first_real_offset(
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    out: Sequence[int],
    pads: Pads,
) -> np.ndarray:
    """Flat offset of each window's first non-padding cell, shape ``out``.

    PyTorch starts its scan there, so a window of -inf inputs routes δ to that cell, not to the
    padding. A window that lies wholly in the padding (possible with dilation) routes it nowhere.
    """
    first = np.zeros(out, dtype=np.intp)
    place = 1
    for axis in reversed(range(len(kernel))):
        k, s, d, o, (lo, _) = kernel[axis], stride[axis], dilation[axis], out[axis], pads[axis]
        start = np.arange(o) * s - lo  # first input index the window covers (negative: padding)
        k0 = np.clip(-(start // d), 0, k - 1)  # smallest k with start + k*d >= 0
        shape = [1] * len(kernel)
        shape[axis] = o
        first += (k0 * place).reshape(shape)
        place *= k
    return first


def _argmax_offset(cell: list[np.ndarray], y: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Flat kernel offset of each window's maximum ``y``, as PyTorch's scan picks it.

    Two cheap vectorised passes instead of one branchy scan: ``y`` is known, so the argmax is
    the first offset whose cell equals it (written backwards so that the first tie lands last).
    """
    arg = np.empty(y.shape, dtype=np.min_scalar_type(len(cell)))
    arg[...] = first
    hit = np.empty(y.shape, dtype=bool)
    for flat in reversed(range(len(cell))):
        np.equal(cell[flat], y, out=hit)
        np.copyto(arg, flat, where=hit, casting="unsafe")
    # all-(-inf) windows: PyTorch keeps its starting cell, the first one that is not padding
    np.copyto(arg, first, where=np.isneginf(y), casting="unsafe")
    if np.isnan(y).any():  # NaN != NaN left NaN windows at `first`; PyTorch takes the last NaN
        for flat, v in enumerate(cell):
            np.copyto(arg, flat, where=np.isnan(v), casting="unsafe")
    return arg


def _max_pool_compiled(
    xp: np.ndarray,
    first: np.ndarray,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dil: tuple[int, ...],
    out: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """``y`` and the argmax offsets through the compiled kernel, viewed as 3-D pooling."""
    from deltanet.ops import pool_kernels  # imports numba: only once compiled kernels run

    n, c = xp.shape[:2]
    y = np.empty((n, c, *out), dtype=xp.dtype)
    arg = np.empty((n, c, *out), dtype=np.min_scalar_type(np.prod(kernel)))
    pool_kernels.max_pool_forward_for(lift3d(kernel))(
        np.ascontiguousarray(xp).reshape(n * c, *lift3d(xp.shape[2:])),
        first.reshape(lift3d(out)),
        lift3d(kernel),
        lift3d(strides),
        lift3d(dil),
        y.reshape(n * c, *lift3d(out)),
        arg.reshape(n * c, *lift3d(out)),
        xp.dtype.type(-np.inf),
    )
    return y, arg


def max_pool_forward(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    argmax: bool = True,
) -> tuple[np.ndarray, tuple]:
    """``y[o] = max over the window of o``: ``(N, C, *in) -> (N, C, *out)``.

    The argmax is kept as a flat kernel offset per output, chosen as PyTorch's scan
    (``if val > max or isnan(val)``) chooses it: the first maximum in window order, the last NaN.
    ``argmax=False`` (inference) computes ``y`` alone, the same values; the cache then holds
    ``x``, and the first backward pass finds the argmax (``LazyArgmax``).
    """
    kernel, strides, dil, out, pads = _geometry(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )
    if not argmax:
        y = _max_values(pad(x, pads, -np.inf), kernel, strides, dil, out)
        return y, LazyArgmax((x, kernel_size, stride, padding, dilation, ceil_mode))
    first = _first_real_offset(kernel, strides, dil, out, pads)
    padded_shape = (*x.shape[:2], *(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads)))
    cache = (padded_shape, pads, kernel, strides, dil, x.dtype)
    if compiled.enabled():  # one pass over each window instead of three per kernel offset
        y, arg = _max_pool_compiled(pad(x, pads, -np.inf), first, kernel, strides, dil, out)
        return y, (arg, *cache)
    cells = _window_cells(pad(x, pads, -np.inf), kernel, strides, dil, out)
    y = _max_of(cells)
    return y, (_argmax_offset(cells, y, first), *cache)


def _window_cells(
    xp: np.ndarray,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dil: tuple[int, ...],
    out: tuple[int, ...],
) -> list[np.ndarray]:
    """One ``(N, C, *out)`` view per kernel offset ``k``, in window order: ``xp[o*s + k*d]``."""
    windows = sliding_windows(xp, kernel, strides, dil, out)
    return [windows[(Ellipsis, *k)] for k in itertools.product(*map(range, kernel))]


def _max_of(cells: list[np.ndarray]) -> np.ndarray:
    """The elementwise maximum of the window cells (NumPy reference)."""
    y = cells[0].copy()
    for v in cells[1:]:
        np.maximum(y, v, out=y)  # propagates NaN, as PyTorch does
    return y


class LazyArgmax:
    """The cache of a max pooling that skipped the argmax: its arguments, and the argmax once a
    backward pass asked for it (a Jacobian runs one backward pass per output unit)."""

    def __init__(self, args: tuple) -> None:
        self.args: tuple | None = args
        self._cache: tuple | None = None

    def cache(self) -> tuple:
        """The cache ``max_pool_forward`` keeps with the argmax, computed on the first call."""
        if self._cache is None:
            self._cache = max_pool_forward(*self.args)[1]
            self.args = None  # x is no longer needed
        return self._cache


def _max_values(
    xp: np.ndarray,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dil: tuple[int, ...],
    out: tuple[int, ...],
) -> np.ndarray:
    """The window maxima of the padded ``xp`` without their argmax."""
    if compiled.enabled():
        from deltanet.ops import pool_kernels

        n, c = xp.shape[:2]
        y = np.empty((n, c, *out), dtype=xp.dtype)
        pool_kernels.max_pool3d_values(
            np.ascontiguousarray(xp).reshape(n * c, *lift3d(xp.shape[2:])),
            lift3d(kernel), lift3d(strides), lift3d(dil),
            y.reshape(n * c, *lift3d(out)), xp.dtype.type(-np.inf),
        )  # fmt: skip
        return y
    return _max_of(_window_cells(xp, kernel, strides, dil, out))


def max_pool_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``δx[argmax(o)] += δy[o]``: each δ goes whole to its window's maximum; ``(dx,)``."""
    if isinstance(cache, LazyArgmax):  # a forward pass without the argmax (inference)
        cache = cache.cache()
    arg, padded_shape, pads, kernel, strides, dil, dtype = cache
    out = arg.shape[2:]
    dxp = np.zeros(padded_shape, dtype=dtype)
    if compiled.enabled():
        from deltanet.ops import pool_kernels

        pool_kernels.max_pool3d_backward(  # as 3-D pooling over (N*C, D, H, W)
            np.ascontiguousarray(dy, dtype=dtype).reshape(-1, *lift3d(out)),
            arg.reshape(-1, *lift3d(out)),
            lift3d(kernel),
            lift3d(strides),
            lift3d(dil),
            dxp.reshape(-1, *lift3d(padded_shape[2:])),
        )
        return (np.ascontiguousarray(unpad(dxp, pads)),)
    for flat, k in enumerate(itertools.product(*map(range, kernel))):
        target = dxp[(Ellipsis, *_offset_slices(k, strides, dil, out))]
        np.add(target, dy, out=target, where=arg == flat)  # overlapping windows add up
    return (np.ascontiguousarray(unpad(dxp, pads)),)


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


def avg_pool_forward(
    x: np.ndarray,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> tuple[np.ndarray, tuple]:
    """``y[o] = Σ_window x / |window(o)|`` (padding is zeros): ``(N, C, *in) -> (N, C, *out)``."""
    kernel, strides, dil, out, pads = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    xp = pad(x, pads, 0.0)
    windows = sliding_windows(xp, kernel, strides, dil, out)
    total = np.zeros((*x.shape[:2], *out), dtype=x.dtype)
    for k in itertools.product(*map(range, kernel)):
        total += windows[(Ellipsis, *k)]
    user_pad = tuple(lo for lo, _ in pads)
    divisor = _avg_divisor(x.shape[2:], kernel, strides, user_pad, out, count_include_pad, x.dtype)
    y = np.divide(total, divisor, out=total)
    return y, (divisor, xp.shape, pads, kernel, strides, x.dtype)


def avg_pool_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``δx[i] = Σ_{o: i in window(o)} δy[o] / |window(o)|``; ``(dx,)``."""
    divisor, padded_shape, pads, kernel, strides, dtype = cache
    share = (dy / divisor).astype(dtype, copy=False)  # the δ each cell of window o receives
    dwin = np.broadcast_to(share.reshape(share.shape + (1,) * len(kernel)), share.shape + kernel)
    dxp = window_adjoint(dwin, padded_shape, kernel, strides, (1,) * len(kernel))
    return (np.ascontiguousarray(unpad(dxp, pads)),)


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


def global_max_pool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
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
    return y.reshape(*x.shape[:2], *(1,) * (x.ndim - 2)), (arg, x.shape, x.dtype)


def global_max_pool_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``δx[argmax] = δy``, zero elsewhere; ``(dx,)``."""
    arg, x_shape, dtype = cache
    dx = np.zeros((*x_shape[:2], int(np.prod(x_shape[2:]))), dtype=dtype)
    np.put_along_axis(dx, arg[..., None], dy.reshape(*x_shape[:2], 1), axis=-1)
    return (dx.reshape(x_shape),)
