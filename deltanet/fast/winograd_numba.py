"""Winograd's tile transforms as numba loops (``fast/winograd.py`` calls them when ``enabled()``).

Two kernels serve all three passes. ``tiles_in`` cuts a batch of maps into overlapping tiles
(zeros beyond the map's edges) and returns ``L d Lᵀ`` for each, laid out as the batched GEMMs'
right-hand side ``(alpha², C, N*tiles)``: ``L = Bᵀ`` for the input (forward) and for δy (δx),
``L = A`` for δy's ``m x m`` tiles in the weight gradient. ``tiles_out`` applies ``Aᵀ m A`` to
each position's GEMM result and writes the ``m x m`` tile into the output, cropped at its edges,
with the bias added.

Each kernel is compiled for one matrix and dtype (``kernels``): the matrix is a tuple of
constants, so LLVM unrolls the small products, drops the zeros (``Bᵀ`` of F(4x4, 3x3): 14 of
36 entries; fastmath: no inf/NaN special cases for them) and vectorises the loops over a row of
tiles. Closures skip numba's disk cache: each compiles once per process (about a second).
Serial, as every kernel here: with ``prange`` over the (sample, channel) planes numba's
spinning threads slowed the batched GEMMs between the transforms (VGG block forward 18 ms
serial against 40-60 ms parallel on 2 busy cores, docs/performance.md).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from deltanet.fast import njit


@functools.cache
def tiles_in(mat: tuple[tuple[float, ...], ...], dtype: Any) -> Any:
    """The kernel ``(x, off_h, off_w, th, tw, m, out)`` for the matrix ``L = mat`` (``a x s``).

    ``out[ξ, c, n*T + t] = (L d_t Lᵀ)[ξ]`` for each ``s x s`` tile ``d_t`` of ``x[n, c]``; tile
    ``(i, j)`` starts at row ``i*m - off_h``, column ``j*m - off_w``; cells outside ``x`` are
    zeros. A row of tiles at a time: ``L`` over whole contiguous rows (``t1 = L d``), then over
    each tile's columns, the loop over tiles innermost.
    """
    lc = tuple(tuple(dtype.type(v) for v in row) for row in mat)
    a, s = len(mat), len(mat[0])

    @njit(fastmath=True, cache=False)
    def kernel(x, off_h, off_w, th, tw, m, out):  # pragma: no cover - numba
        n_, c_, h, w = x.shape
        tiles = th * tw
        wc = (tw - 1) * m + s  # the width the row of tiles spans
        c_lo = max(0, off_w)  # canvas columns that x fills
        x_lo = max(0, -off_w)
        width = max(0, min(w - x_lo, wc - c_lo))
        for nc in range(n_ * c_):
            n = nc // c_
            c = nc - n * c_
            rows = np.zeros((s, wc), x.dtype)
            t1 = np.empty((a, wc), x.dtype)
            for ti in range(th):
                y0 = ti * m - off_h
                for k in range(s):
                    yy = y0 + k
                    if yy >= 0 and yy < h and width > 0:
                        rows[k, c_lo : c_lo + width] = x[n, c, yy, x_lo : x_lo + width]
                    else:
                        rows[k, :] = 0
                for col in range(wc):  # t1 = L d, whole rows
                    for i in range(a):
                        acc = lc[i][0] * rows[0, col]
                        for k in range(1, s):
                            acc += lc[i][k] * rows[k, col]
                        t1[i, col] = acc
                p0 = n * tiles + ti * tw
                for i in range(a):  # out = t1 Lᵀ per tile
                    for tj in range(tw):
                        q = tj * m
                        for j in range(a):
                            acc = lc[j][0] * t1[i, q]
                            for k in range(1, s):
                                acc += lc[j][k] * t1[i, q + k]
                            out[i * a + j, c, p0 + tj] = acc

    return kernel


@functools.cache
def tiles_out(mat: tuple[tuple[float, ...], ...], dtype: Any) -> Any:
    """The kernel ``(mm, th, tw, bias, y)`` for ``Aᵀ = mat`` (``r x a``): ``y[n, o]``'s tile
    ``t`` = ``Aᵀ m A + b[o]``, ``m = mm[:, o, n*T + t]`` as ``a x a``, cropped at y's edges."""
    lc = tuple(tuple(dtype.type(v) for v in row) for row in mat)
    r, a = len(mat), len(mat[0])

    @njit(fastmath=True, cache=False)
    def kernel(mm, th, tw, bias, y):  # pragma: no cover - numba
        n_, o_, h, w = y.shape
        tiles = th * tw
        for no in range(n_ * o_):
            n = no // o_
            o = no - n * o_
            t1 = np.empty((r, a, tw), y.dtype)
            t2 = np.empty((r, tw * r), y.dtype)
            b = bias[o]
            for ti in range(th):
                p0 = n * tiles + ti * tw
                for j in range(a):  # t1 = Aᵀ m, the loop over tiles innermost
                    for tj in range(tw):
                        for i in range(r):
                            acc = lc[i][0] * mm[j, o, p0 + tj]
                            for k in range(1, a):
                                acc += lc[i][k] * mm[k * a + j, o, p0 + tj]
                            t1[i, j, tj] = acc
                for i in range(r):  # y = t1 A
                    for tj in range(tw):
                        for jj in range(r):
                            acc = b + lc[jj][0] * t1[i, 0, tj]
                            for k in range(1, a):
                                acc += lc[jj][k] * t1[i, k, tj]
                            t2[i, tj * r + jj] = acc
                for i in range(min(r, h - ti * r)):  # cropped
                    y[n, o, ti * r + i, :] = t2[i, :w]

    return kernel
