"""``im2col`` and ``col2im`` with the signatures of ``ops/im2col.py``, through numba when enabled.

NumPy copies the windows one strided slab per kernel offset; when a window row is short (LeNet's
10-wide maps) each slab is many tiny rows and the per-row overhead dominates. ``im2col_numba``
runs the same loops written out; without numba these are the reference functions.
"""

from __future__ import annotations

import math

import numpy as np

from deltanet.fast import enabled, lift3d
from deltanet.ops import im2col as reference
from deltanet.ops.window import Window, pad


def im2col(x: np.ndarray, win: Window, buf: np.ndarray | None = None) -> np.ndarray:
    """The windows of the padded ``x (N, C, *in)`` as ``cols (C*K, N*P)`` (``ops.im2col``)."""
    if not enabled():
        return reference.im2col(x, win, buf)
    from deltanet.fast import im2col_numba  # imports numba: only once it runs

    n, c, kernel, out = x.shape[0], x.shape[1], win.kernel, win.out
    size = c * math.prod(kernel) * n * math.prod(out)
    buf = np.empty(size, dtype=x.dtype) if buf is None else buf
    xp = np.ascontiguousarray(pad(x, win.pads))
    im2col_numba.im2col3d(
        xp.reshape(n, c, *lift3d(xp.shape[2:])), lift3d(kernel), lift3d(win.stride),
        lift3d(win.dilation), lift3d(out), buf[:size].reshape(c, *lift3d(kernel), n, *lift3d(out)),
    )  # fmt: skip
    return buf[:size].reshape(c * math.prod(kernel), n * math.prod(out))


def col2im(dcols: np.ndarray, win: Window, dxp: np.ndarray) -> None:
    """Scatter-add ``dcols (C*K, N*P)`` onto the padded input ``dxp`` (``ops.col2im``)."""
    if not enabled():
        return reference.col2im(dcols, win, dxp)
    if not dxp.flags.c_contiguous:
        raise ValueError("col2im: dxp must be C-contiguous (the kernel writes through it).")
    from deltanet.fast import im2col_numba

    n, c = dxp.shape[:2]
    dcols = np.ascontiguousarray(dcols).reshape(c, *lift3d(win.kernel), n, *lift3d(win.out))
    im2col_numba.col2im3d(
        dcols, lift3d(win.stride), lift3d(win.dilation), dxp.reshape(n, c, *lift3d(dxp.shape[2:]))
    )
    return None
