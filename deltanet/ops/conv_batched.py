"""Convolution with the batch as the batch dimension of the GEMM (``groups == 1``).

``conv.py`` lays the windows out as one wide matrix ``(C*K, N*P)`` and multiplies once; its
result ``(C_out, N*P)`` must then be transposed to ``(N, C_out, P)``, and its backward pass
transposes ``δy`` and ``δcols`` as well. Here the windows are laid out per sample,
``cols (B, C*K, P)``, so that every product lands in the layout it is needed in:

    y[n]     = W cols[n]                  (C_out, C*K) @ (C*K, P)  -> (N, C_out, P), no transpose
    δcols[n] = Wᵀ δy[n]                   (C*K, C_out) @ (C_out, P) -> the window layout of col2im
    ∂L/∂W    = Σ_n δy[n] cols[n]ᵀ         (C_out, P) @ (P, C*K), summed over the batch

The batch goes through in chunks of ``B`` samples whose ``cols`` fit in about 2 MB, so the
windows are written and read back while they are still in the cache, and they are not kept:
the backward pass lays them out again from ``x`` (a copy is cheaper than the memory traffic
of keeping K copies of the input, and the peak memory drops by as much).
``conv.py`` picks this path by shape (``use_batched``); both give the same numbers up to the
order of float additions, and the tests compare them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from deltanet import compiled
from deltanet.ops.window import pad, sliding_windows, unpad

Geometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]

_CHUNK = 1 << 19  # elements of cols per chunk: 2 MB of float32, about what L2 + L3 keep hot


def use_batched(x_shape: Sequence[int], w_shape: Sequence[int], out: Sequence[int]) -> bool:
    """Whether the per-sample GEMMs beat one wide GEMM plus transposes.

    Each sample costs one BLAS call, so the per-sample layout pays off once a sample's output
    has enough positions to keep BLAS busy (measured: MNIST-1D's 20-position maps run faster
    as one wide GEMM, LeNet's 100-position maps as per-sample GEMMs).
    """
    return math.prod(out) >= 64


def _chunks(n: int, ck: int, p: int) -> list[slice]:
    b = max(1, _CHUNK // max(1, ck * p))
    return [slice(i, min(i + b, n)) for i in range(0, n, b)]


def im2col(x: np.ndarray, geo: Geometry, out: Sequence[int]) -> np.ndarray:
    """The windows of the padded ``x (B, C, *in)`` as ``cols (B, C*K, P)`` (one copy)."""
    kernel, stride, dilation, pads = geo
    n, c, nd = x.shape[0], x.shape[1], len(kernel)
    win = sliding_windows(pad(x, pads), kernel, stride, dilation, out)  # (B, C, *out, *k) view
    cols = np.empty((n, c, *kernel, *out), dtype=x.dtype)
    # (B, C, *k, *out): the last axis walks along an input row, so the copy reads in order
    np.copyto(cols, win.transpose(0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd)))
    return cols.reshape(n, c * math.prod(kernel), -1)


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: Geometry, out: Sequence[int]
) -> np.ndarray:
    """``y[n] = W cols[n] + b``: x (N, C, *in), w (C_out, C, *k) -> y (N, C_out, *out)."""
    n, c_out = x.shape[0], w.shape[0]
    w2 = w.reshape(c_out, -1)
    y = np.empty((n, c_out, math.prod(out)), dtype=x.dtype)
    for part in _chunks(n, w2.shape[1], y.shape[2]):
        np.matmul(w2, im2col(x[part], geo, out), out=y[part])
    if b is not None:
        y += b[:, None]
    return y.reshape(n, c_out, *out)


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    geo: Geometry,
    x_padded: Sequence[int],
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(δx, ∂L/∂W)`` from ``dy (N, C_out, *out)`` and the forward's input ``x``.

    δx is None when ``input_grad`` is False (nothing below needs it).
    """
    kernel, stride, dilation, pads = geo
    n, c_out = dy.shape[:2]
    out = dy.shape[2:]
    dyg = dy.reshape(n, c_out, -1)
    w2 = w.reshape(c_out, -1)
    dw = np.zeros(w2.shape, dtype=dy.dtype)
    dxp = np.zeros(x_padded, dtype=dy.dtype) if input_grad else None
    for part in _chunks(n, w2.shape[1], dyg.shape[2]):
        # ∂L/∂W = Σ_n δy[n] cols[n]ᵀ: small per-sample products, summed over the batch
        cols = im2col(x[part], geo, out)
        dw += np.matmul(dyg[part], cols.transpose(0, 2, 1)).sum(axis=0)
        if dxp is not None:
            # δcols[n] = Wᵀ δy[n], already in the window layout (B, C, *k, *out) of col2im
            dcols = np.matmul(w2.T, dyg[part]).reshape(-1, x_padded[1], *kernel, *out)
            _col2im(dcols, stride, dilation, dxp[part])
    return (None if dxp is None else unpad(dxp, pads)), dw.reshape(w.shape)


def _col2im(dcols: np.ndarray, stride, dilation, dxp: np.ndarray) -> None:
    """Scatter-add each kernel offset's slab of ``dcols`` back onto the padded input ``dxp``.

    The adjoint of the windowing, i.e. the full convolution of δy with the kernel rotated by
    180°. NumPy adds one strided slab per kernel offset; numba writes the same loop out.
    """
    nd = len(stride)
    kernel, out = dcols.shape[2 : 2 + nd], dcols.shape[2 + nd :]
    if compiled.enabled():
        from deltanet.ops import conv_kernels  # imports numba: only once compiled kernels run

        lift = (1,) * (3 - nd)
        n, c = dcols.shape[:2]
        conv_kernels.col2im3d(
            dcols.reshape(n, c, *lift, *kernel, *lift, *out),
            lift + tuple(stride),
            lift + tuple(dilation),
            dxp.reshape(n, c, *lift, *dxp.shape[2:]),
        )
        return
    for k in itertools.product(*map(range, kernel)):
        target = tuple(
            slice(ki * d, ki * d + s * (o - 1) + 1, s)
            for ki, d, s, o in zip(k, dilation, stride, out)
        )
        dxp[(slice(None), slice(None), *target)] += dcols[(slice(None), slice(None), *k)]
