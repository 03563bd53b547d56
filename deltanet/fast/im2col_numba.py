"""im2col and col2im as numba loops (``fast/im2col.py`` calls them when ``enabled()``).

NumPy copies the windows with one strided slab per kernel offset; when a window row is short
(LeNet's 10-wide maps) each slab is many tiny rows and the per-row overhead dominates. The loops
are the same ones, written out. Every geometry is given as 3-D (1-D and 2-D convolutions add
kernel and spatial axes of size 1); ``ops/im2col.py`` is the reference the tests compare with.

The windows ("cols") are laid out as ``(C, kd, kh, kw, N, od, oh, ow)``: channels and kernel
offsets as the rows of one GEMM, the batch and the output positions as its columns.

The flat indices are unsigned: with signed ones numba handles negative (wrap-around) indexing
on every access, which keeps LLVM from vectorising the inner loop. Serial, as every kernel
here: numba's spinning threads slow down the BLAS calls that run between these kernels.
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import njit


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
