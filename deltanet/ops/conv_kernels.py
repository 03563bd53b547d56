"""Compiled col2im for ``conv_batched`` (numba), used when ``compiled.enabled()``.

NumPy copies the windows with one strided slab per kernel offset; when a window row is short
(LeNet's 10-wide maps) each slab is many tiny rows and the per-row overhead dominates: col2im
at batch 256 of LeNet's second convolution takes about 18 ms in NumPy and 3.5 ms here. The
loop is the same one, written out. Every geometry is given as 3-D (1-D and 2-D convolutions
add kernel and spatial axes of size 1); the NumPy code in ``conv_batched.py`` is the reference.
Serial on purpose, as in ``pool_kernels``: numba's spinning threads slow the BLAS calls down.
"""

from __future__ import annotations

from deltanet.compiled import njit


@njit
def col2im3d(dcols, stride, dilation, dxp):  # pragma: no cover - numba
    """``dxp[n, c, i*sd + a*dd, j*sh + b*dh, l*sw + e*dw] += dcols[n, c, a, b, e, i, j, l]``."""
    sd, sh, sw = stride
    dd, dh, dw = dilation
    n_, c_, kd, kh, kw, od, oh, ow = dcols.shape
    for n in range(n_):
        for c in range(c_):
            for a in range(kd):
                for b in range(kh):
                    for e in range(kw):
                        for i in range(od):
                            for j in range(oh):
                                for m in range(ow):
                                    dxp[
                                        n, c, i * sd + a * dd, j * sh + b * dh, m * sw + e * dw
                                    ] += dcols[n, c, a, b, e, i, j, m]
