"""im2col and col2im: the windows of a convolution as the columns of a GEMM, and the adjoint.

For ``x (N, C, *in)`` and a kernel of K cells, ``im2col`` copies every window of the padded input
into ``cols (C*K, N*P)``, laid out as ``(C, *k, N, *out)``: channels and kernel offsets are the
rows of the GEMM, the batch and the P output positions its columns. Then a convolution is one
matrix product, ``y = W cols`` with ``W (C_out, C*K)``.

``col2im`` is the adjoint: it scatter-adds ``δcols = Wᵀ δy`` back onto the cells each window came
from (``window_adjoint``), so an input cell receives the δ of every window that saw it. Written
out, this is the "full convolution of δy with the kernel rotated by 180°" of the
backpropagation notes.
"""

from __future__ import annotations

import math

import numpy as np

from deltanet.ops.window import Window, pad, sliding_windows, window_adjoint


def _cols_axes(nd: int) -> tuple[int, ...]:
    """The axes of ``(N, C, *out, *k)`` in the order of the columns' layout ``(C, *k, N, *out)``."""
    return (1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd))


def im2col(x: np.ndarray, win: Window, buf: np.ndarray | None = None) -> np.ndarray:
    """The windows of the padded ``x (N, C, *in)`` as ``cols (C*K, N*P)``.

    Written into ``buf`` (at least ``C*K*N*P`` elements) when given, else into a new array.
    """
    n, c, nd = x.shape[0], x.shape[1], len(win.kernel)
    size = c * math.prod(win.kernel) * n * math.prod(win.out)
    buf = np.empty(size, dtype=x.dtype) if buf is None else buf
    cols = buf[:size].reshape(c, *win.kernel, n, *win.out)
    windows = sliding_windows(pad(x, win.pads), win.kernel, win.stride, win.dilation, win.out)
    np.copyto(cols, windows.transpose(_cols_axes(nd)))  # windows: (N, C, *out, *k), a view
    return cols.reshape(c * math.prod(win.kernel), n * math.prod(win.out))


def col2im(dcols: np.ndarray, win: Window, dxp: np.ndarray) -> None:
    """Scatter-add ``dcols (C*K, N*P)`` back onto the padded input ``dxp (N, C, *in_padded)``.

    The adjoint of ``im2col``, i.e. the full convolution of δy with the kernel rotated by 180°:
    the input cell ``o*stride + k*dilation`` receives the δ of every window that saw it.
    """
    n, c, nd = dxp.shape[0], dxp.shape[1], len(win.kernel)
    dwin = dcols.reshape(c, *win.kernel, n, *win.out)  # (C, *k, N, *out)
    window_adjoint(dwin.transpose(np.argsort(_cols_axes(nd))), win, dxp)  # as (N, C, *out, *k)
