"""im2col and col2im: the windows of a convolution as the columns of a GEMM, and the adjoint.

For ``x (N, C, *in)`` and a kernel of K cells, ``im2col`` copies every window of the padded input
into ``cols (C*K, N*P)``, laid out as ``(C, *k, N, *out)``: channels and kernel offsets are the
rows of the GEMM, the batch and the P output positions its columns. Then a convolution is one
matrix product, ``y = W cols`` with ``W (C_out, C*K)``.

``col2im`` is the adjoint: it scatter-adds ``δcols = Wᵀ δy`` back onto the cells each window came
from, so an input cell receives the δ of every window that saw it. Written out, this is the
"full convolution of δy with the kernel rotated by 180°" of the backpropagation notes.

Both run in ``conv_kernels`` (numba) when ``compiled.enabled()``, else in NumPy, one strided
slab per kernel offset; the NumPy code is the reference, and the tests compare the two.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from deltanet import compiled
from deltanet.ops.window import Pads, lift3d, pad, sliding_windows

Geometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], Pads]  # kernel, s, d, pads


def im2col(
    x: np.ndarray, geo: Geometry, out: Sequence[int], buf: np.ndarray | None = None
) -> np.ndarray:
    """The windows of the padded ``x (N, C, *in)`` as ``cols (C*K, N*P)``.

    Written into ``buf`` (at least ``C*K*N*P`` elements) when given, else into a new array. The
    layout is ``(C, *k, N, *out)``: the last axis walks along an input row, so the copy reads in
    order.
    """
    kernel, stride, dilation, pads = geo
    n, c, nd = x.shape[0], x.shape[1], len(kernel)
    size = c * math.prod(kernel) * n * math.prod(out)
    buf = np.empty(size, dtype=x.dtype) if buf is None else buf
    cols = buf[:size].reshape(c, *kernel, n, *out)
    xp = np.ascontiguousarray(pad(x, pads))
    if compiled.enabled():
        from deltanet.ops import conv_kernels  # imports numba: only once compiled kernels run

        lifted = (n, c, *lift3d(xp.shape[2:]))
        conv_kernels.im2col3d(
            xp.reshape(lifted), lift3d(kernel), lift3d(stride), lift3d(dilation), lift3d(out),
            cols.reshape(c, *lift3d(kernel), n, *lift3d(out)),
        )  # fmt: skip
    else:
        win = sliding_windows(xp, kernel, stride, dilation, out)  # (B, C, *out, *k) view
        np.copyto(cols, win.transpose(1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd)))
    return cols.reshape(c * math.prod(kernel), n * math.prod(out))


def col2im(dcols: np.ndarray, geo: Geometry, out: Sequence[int], dxp: np.ndarray) -> None:
    """Scatter-add ``dcols (C*K, N*P)`` back onto the padded input ``dxp (N, C, *in_padded)``.

    The adjoint of ``im2col``, i.e. the full convolution of δy with the kernel rotated by 180°:
    the input cell ``o*stride + k*dilation`` receives the δ of every window that saw it.
    """
    kernel, stride, dilation, _ = geo
    n, c = dxp.shape[:2]
    dcols = np.ascontiguousarray(dcols).reshape(c, *kernel, n, *out)
    if compiled.enabled():
        if not dxp.flags.c_contiguous:
            raise ValueError("col2im: dxp must be C-contiguous (the kernel writes through it).")
        from deltanet.ops import conv_kernels

        conv_kernels.col2im3d(
            dcols.reshape(c, *lift3d(kernel), n, *lift3d(out)), lift3d(stride), lift3d(dilation),
            dxp.reshape(n, c, *lift3d(dxp.shape[2:])),
        )  # fmt: skip
        return
    for k in itertools.product(*map(range, kernel)):
        target = tuple(
            slice(ki * d, ki * d + s * (o - 1) + 1, s)
            for ki, d, s, o in zip(k, dilation, stride, out)
        )
        # dcols[:, k] is (C, N, *out): channels and batch swap places to match dxp
        dxp[(slice(None), slice(None), *target)] += dcols[(slice(None), *k)].swapaxes(0, 1)
