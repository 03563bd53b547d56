"""Compiled im2col and col2im for convolution (numba), used when ``compiled.enabled()``.

NumPy copies the windows with one strided slab per kernel offset; when a window row is short
(LeNet's 10-wide maps) each slab is many tiny rows and the per-row overhead dominates: col2im
at batch 256 of LeNet's second convolution takes about 18 ms in NumPy and 2-3 ms here. The
loops are the same ones, written out. Every geometry is given as 3-D (1-D and 2-D convolutions
add kernel and spatial axes of size 1); the NumPy code in ``conv.py`` and ``conv_chunked.py``
is the reference, and the tests compare the two.

The windows ("cols") are laid out as ``(C, kd, kh, kw, N, od, oh, ow)``: channels and kernel
offsets as the rows of one GEMM, the batch and the output positions as its columns.

The flat indices are unsigned on purpose: with signed indices numba must handle negative
(wrap-around) indexing on every access, which keeps LLVM from vectorising the inner loop and
made im2col 2.3x slower. Serial on purpose, as in ``pool_kernels``: numba's spinning threads
slow down the BLAS calls that run between these kernels.
"""

from __future__ import annotations

import numpy as np

from deltanet.compiled import njit


@njit
def _geometry(kernel, stride, dilation, out):  # pragma: no cover - numba
    """The twelve sizes as unsigned integers (a uint64 times an int64 is a float in numba)."""
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    od, oh, ow = out
    u = np.uint64
    return u(kd), u(kh), u(kw), u(sd), u(sh), u(sw), u(dd), u(dh), u(dw), u(od), u(oh), u(ow)


@njit
def _dims(shape):  # pragma: no cover - numba
    """The five sizes of a 5-D shape as unsigned integers."""
    u = np.uint64
    return u(shape[0]), u(shape[1]), u(shape[2]), u(shape[3]), u(shape[4])


@njit
def _walk(xp, cols, kernel, stride, dilation, out, adjoint):  # pragma: no cover - numba
    """Visit every (window cell, column) pair once, in the order of ``cols``' memory.

    ``cols[c, a, b, e, n, i, j, m]`` pairs with ``xp[n, c, i*sd + a*dd, j*sh + b*dh, m*sw + e*dw]``:
    im2col copies along this walk, col2im (``adjoint``) adds back along the very same walk,
    which is why col2im is the adjoint of im2col. The branch is loop-invariant: LLVM hoists it.
    """
    kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow = _geometry(kernel, stride, dilation, out)
    n_, c_, d_, h_, w_ = _dims(xp.shape)
    image, flat = xp.ravel(), cols.ravel()
    q = np.uint64(0)
    for c in range(c_):
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    for n in range(n_):
                        plane = (n * c_ + c) * d_
                        for i in range(od):
                            row = (plane + i * sd + a * dd) * h_
                            for j in range(oh):
                                s0 = (row + j * sh + b * dh) * w_ + e * dw
                                if adjoint and sw == 1:
                                    for m in range(ow):
                                        image[s0 + m] += flat[q + m]
                                elif adjoint:
                                    for m in range(ow):
                                        image[s0 + m * sw] += flat[q + m]
                                elif sw == 1:  # contiguous rows: a loop LLVM vectorises
                                    for m in range(ow):
                                        flat[q + m] = image[s0 + m]
                                else:
                                    for m in range(ow):
                                        flat[q + m] = image[s0 + m * sw]
                                q += ow


@njit
def im2col3d(xp, kernel, stride, dilation, out, cols):  # pragma: no cover - numba
    """``cols[c, a, b, e, n, i, j, m] = xp[n, c, i*sd + a*dd, j*sh + b*dh, m*sw + e*dw]``.

    ``xp (N, C, D, H, W)`` is the padded input, ``cols`` the (contiguous) output.
    """
    _walk(xp, cols, kernel, stride, dilation, out, False)


@njit
def col2im3d(dcols, stride, dilation, dxp):  # pragma: no cover - numba
    """``dxp[n, c, i*sd + a*dd, j*sh + b*dh, m*sw + e*dw] += dcols[c, a, b, e, n, i, j, m]``."""
    _, kd, kh, kw, _, od, oh, ow = dcols.shape
    _walk(dxp, dcols, (kd, kh, kw), stride, dilation, (od, oh, ow), True)


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

    Three rows of ``a`` meet three rows of ``b`` at a time (``dot3x3``): 0.24-0.29 ms against
    0.58-0.63 for one dot product at a time, LeNet's 6 x 25 weight gradient over 53 samples.
    The contraction runs in blocks of at most 2048 so that the six rows stay in L1.
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
