"""Convolution through the batch in chunks, one GEMM per chunk (``groups == 1``).

``ops/conv.py`` lays the windows of the whole batch out as one wide matrix ``cols (C*K, N*P)``
and keeps it for the backward pass: K copies of the input (9 for a 3x3 kernel, 25 for 5x5),
written to memory and read back three times. Here the batch goes through in chunks of ``B``
samples whose windows fit in the cache (``plan.chunk_samples``), so they are written and read
back while they are still there, and they are not kept: the backward pass lays them out again
from ``x`` (a copy in the cache is cheaper than the memory traffic of keeping K copies of the
input, and the peak memory drops by as much). For one chunk, with ``cols (C*K, B*P)`` and
``δy`` as ``(C_out, B*P)``:

    y         = W cols                     (C_out, C*K) @ (C*K, B*P)
    ∂L/∂W    += δy colsᵀ                   (C_out, B*P) @ (B*P, C*K)
    δcols     = Wᵀ δy                      (C*K, C_out) @ (C_out, B*P), scattered back (col2im)

The window copies and the scatter-add are ``im2col`` and ``col2im`` (``fast/im2col.py``). The
results equal the reference's up to the order of float additions; the tests compare them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet.fast import plan
from deltanet.fast.im2col import col2im, im2col
from deltanet.fast.thin_matmul import matmul_nt
from deltanet.ops.conv import bias_grad
from deltanet.ops.window import Window, unpad


def _chunks(n: int, ck: int, p: int, dtype: np.dtype) -> tuple[list[slice], np.ndarray]:
    """The batch's chunks of ``B`` samples and one buffer for a chunk's windows (reused)."""
    b = plan.chunk_samples(ck * p)
    return [slice(i, min(i + b, n)) for i in range(0, n, b)], np.empty(ck * min(b, n) * p, dtype)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, win: Window) -> np.ndarray:
    """``y = W cols + b`` chunk by chunk: x (N, C, *in), w (C_out, C, *k) -> y (N, C_out, *out)."""
    n, c_out, p = x.shape[0], w.shape[0], math.prod(win.out)
    w2 = w.reshape(c_out, -1)
    y = np.empty((n, c_out, p), dtype=x.dtype)
    parts, buf = _chunks(n, w2.shape[1], p, x.dtype)
    for part in parts:
        cols = im2col(x[part], win, buf)
        yw = (w2 @ cols).reshape(c_out, -1, p).swapaxes(0, 1)  # (B, C_out, P), in the cache
        if b is None:
            np.copyto(y[part], yw)
        else:  # the bias rides along with the copy: one pass over y instead of two
            np.add(yw, b[:, None], out=y[part])
    return y.reshape(n, c_out, *win.out)


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    win: Window,
    x_padded: Sequence[int],
    input_grad: bool = True,
    bias: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(δx, ∂L/∂W, ∂L/∂b)`` from ``dy (N, C_out, *out)`` and the forward's input ``x``.

    δx is None when ``input_grad`` is False (nothing below needs it), ∂L/∂b when ``bias`` is.
    """
    n, c_out = dy.shape[:2]
    p = math.prod(win.out)
    dyg = dy.reshape(n, c_out, p)
    w2 = w.reshape(c_out, -1)
    dwt = np.zeros(w2.shape[::-1], dtype=dy.dtype)  # (∂L/∂W)ᵀ: see the loop
    dxp = np.zeros(x_padded, dtype=dy.dtype) if input_grad else None
    parts, buf = _chunks(n, w2.shape[1], p, x.dtype)
    for part in parts:
        cols = im2col(x[part], win, buf)  # (C*K, B*P), laid out again from x
        dyw = dyg[part]  # (B, C_out, P), sample-major
        if dxp is not None:  # the GEMMs want δy as (C_out, B*P)
            dyw = np.ascontiguousarray(dyw.swapaxes(0, 1)).reshape(c_out, -1)
        # ∂L/∂W = Σ_n δy[n] cols[n]ᵀ: the correlation of the input windows with δy, computed
        # transposed, cols δyᵀ, which BLAS runs faster; as dot products when small (which read
        # a first layer's sample-major δy in place, with no transposed copy)
        dwt += matmul_nt(cols, dyw)
        if dxp is not None:
            # δcols = Wᵀ δy, scattered back onto the windows they came from
            col2im(w2.T @ dyw, win, dxp[part])
    db = bias_grad(dyg) if bias else None
    dw = np.ascontiguousarray(dwt.T).reshape(w.shape)
    return (None if dxp is None else unpad(dxp, win.pads)), dw, db
