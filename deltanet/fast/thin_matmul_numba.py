"""Register-blocked dot products (numba): the thin weight-gradient products of
``thin_matmul.py`` and, through ``dot3x3``, the weight gradient of ``direct_numba``.

Serial, as every kernel here; flat arrays and unsigned offsets, as in ``im2col_numba``.
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import njit


@njit(fastmath={"reassoc", "contract"})
def dot3x3(a, a0, a1, a2, b, b0, b1, b2, n, zero):  # pragma: no cover - numba
    """The nine dot products ``a[ai : ai + n] · b[bj : bj + n]`` of three stretches of the flat
    array ``a`` (starting at ``a0, a1, a2``) with three of ``b``, in registers.

    Six loads feed nine multiply-adds per step, where one dot product at a time needs two loads
    per multiply-add: loads, not arithmetic, bound these loops. Flat arrays and unsigned offsets,
    not views: a view costs reference counting on every call, and the weight gradient of a
    direct convolution makes tens of thousands of calls. Only reassociation and FMA contraction
    are allowed to LLVM (so that it vectorises the sums); NaN and inf propagate as in any
    product. ``zero`` is 0 in the arrays' dtype.
    """
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = zero
    for k in range(n):
        u, v, w = a[a0 + k], a[a1 + k], a[a2 + k]
        p, q, r = b[b0 + k], b[b1 + k], b[b2 + k]
        s00 += u * p
        s01 += u * q
        s02 += u * r
        s10 += v * p
        s11 += v * q
        s12 += v * r
        s20 += w * p
        s21 += w * q
        s22 += w * r
    return (s00, s01, s02), (s10, s11, s12), (s20, s21, s22)


@njit
def add3x3(out, i, j, sums):  # pragma: no cover - numba
    """``out[i:i+3, j:j+3] += sums``, the cells that exist: a block at the ragged edge repeats
    its last row or column (clamped indices) and writes only the cells it owns."""
    i, j = int(i), int(j)  # unsigned in some callers: uint64 - int64 would be a float
    for di in range(min(3, out.shape[0] - i)):
        for dj in range(min(3, out.shape[1] - j)):
            out[i + di, j + dj] += sums[di][dj]


@njit
def matmul_nt(a, b, out):  # pragma: no cover - numba
    """``out += a @ bᵀ`` for ``a (M, S*P)`` and ``b (S, N, P)``: M*N dot products of length S*P.

    ``b`` is sample-major, as a layer holds δy (batch, channels, positions), and ``a``'s columns
    run over (sample, position) in the same order; a plain ``(N, K)`` matrix is ``S = 1``.

    Three rows of ``a`` meet three rows of ``b`` at a time (``dot3x3``), which halves the loads
    per multiply-add; the contraction runs in blocks of at most 2048 so that the six rows stay
    in L1.
    """
    u = np.uint64
    m_, k_ = u(a.shape[0]), u(a.shape[1])
    s_, n_, p_ = u(b.shape[0]), u(b.shape[1]), u(b.shape[2])
    af, bf = a.ravel(), b.ravel()
    zero = np.zeros(1, out.dtype)[0]
    for s in range(s_):
        for p0 in range(u(0), p_, u(2048)):
            n = min(u(2048), p_ - p0)
            k0 = s * p_ + p0  # the same stretch in a's columns
            r = s * n_ * p_ + p0  # b[s, 0, p0]
            for i in range(u(0), m_, u(3)):
                i1, i2 = min(i + u(1), m_ - u(1)), min(i + u(2), m_ - u(1))
                for j in range(u(0), n_, u(3)):
                    j1, j2 = min(j + u(1), n_ - u(1)), min(j + u(2), n_ - u(1))
                    sums = dot3x3(
                        af, i * k_ + k0, i1 * k_ + k0, i2 * k_ + k0,
                        bf, r + j * p_, r + j1 * p_, r + j2 * p_, n, zero,
                    )  # fmt: skip
                    add3x3(out, i, j, sums)
