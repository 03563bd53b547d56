"""Convolution through the batch in chunks, one GEMM per chunk (``groups == 1``).

``conv.py`` lays the windows of the whole batch out as one wide matrix ``cols (C*K, N*P)`` and
keeps it for the backward pass: K copies of the input (9 for a 3x3 kernel, 25 for 5x5), written
to memory and read back three times. Here the batch goes through in chunks of ``B`` samples
whose windows fit in about 2 MB, so they are written and read back while they are still in the
cache, and they are not kept: the backward pass lays them out again from ``x`` (a copy in the
cache is cheaper than the memory traffic of keeping K copies of the input, and the peak memory
drops by as much). For one chunk, with ``cols (C*K, B*P)`` and ``δy`` as ``(C_out, B*P)``:

    y         = W cols                     (C_out, C*K) @ (C*K, B*P)
    ∂L/∂W    += δy colsᵀ                   (C_out, B*P) @ (B*P, C*K)
    δcols     = Wᵀ δy                      (C*K, C_out) @ (C_out, B*P), scattered back (col2im)

The window copies and the scatter-add are ``im2col`` and ``col2im`` (``im2col.py``). ``conv.py``
picks this path by shape (``use_chunked``); both give the same numbers up to the order of float
additions, and the tests compare them. The chunk size was measured, not derived: 8 MB chunks
ran LeNet-5's second convolution at batch 256 about 30% slower than 4 MB ones, 2 MB chunks
trained LeNet-5 at batch 256 1-11% faster than 4 MB ones and a Conv3D net 1-9% faster, 512 KB
chunks 20% slower (a Python loop and narrower GEMMs), and a VGG block ran 8% slower with two
2.4 MB samples per chunk than with one, although its GEMMs alone run faster wider. The L3 cache
here is shared with other machines: the smaller the chunk, the less their traffic evicts it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet.ops.im2col import Geometry, col2im, im2col
from deltanet.ops.thin_matmul import matmul_nt
from deltanet.ops.window import unpad

_CHUNK = 1 << 19  # elements of cols per chunk: 2 MB of float32, well inside a shared L3
_CHUNKED_FROM = 1 << 21  # elements of windows (8 MB of float32) from which chunks pay off


def use_chunked(x_shape: Sequence[int], w_shape: Sequence[int], out: Sequence[int]) -> bool:
    """Whether chunks beat one whole-batch GEMM (``conv.py``): when the windows are large.

    Small layers (MNIST-1D's 20-position maps at batch 256: 2.6 MB of windows) gain nothing
    from chunking and pay a Python loop; large ones (LeNet's 15 MB, a VGG block's 75 MB) spend
    more time writing windows to memory than multiplying them.
    """
    return x_shape[0] * math.prod(w_shape[1:]) * math.prod(out) > _CHUNKED_FROM


def bias_grad(dy: np.ndarray) -> np.ndarray:
    """``∂L/∂b = Σ δy`` over the batch and every position (b is added to each of them).

    Over the batch first, then along each contiguous map: 2-4x faster than one ``sum`` over
    both axes, which NumPy walks with a stride.
    """
    return dy.sum(axis=0).reshape(dy.shape[1], -1).sum(axis=1)


def _chunks(n: int, ck: int, p: int, dtype: np.dtype) -> tuple[list[slice], np.ndarray]:
    """The batch's chunks of ``B`` samples and one buffer for a chunk's windows (reused)."""
    b = max(1, _CHUNK // max(1, ck * p))
    return [slice(i, min(i + b, n)) for i in range(0, n, b)], np.empty(ck * min(b, n) * p, dtype)


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: Geometry, out: Sequence[int]
) -> np.ndarray:
    """``y = W cols + b`` chunk by chunk: x (N, C, *in), w (C_out, C, *k) -> y (N, C_out, *out)."""
    n, c_out, p = x.shape[0], w.shape[0], math.prod(out)
    w2 = w.reshape(c_out, -1)
    y = np.empty((n, c_out, p), dtype=x.dtype)
    parts, buf = _chunks(n, w2.shape[1], p, x.dtype)
    for part in parts:
        cols = im2col(x[part], geo, out, buf)
        yw = (w2 @ cols).reshape(c_out, -1, p).swapaxes(0, 1)  # (B, C_out, P), in the cache
        if b is None:
            np.copyto(y[part], yw)
        else:  # the bias rides along with the copy: one pass over y instead of two
            np.add(yw, b[:, None], out=y[part])
    return y.reshape(n, c_out, *out)


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    geo: Geometry,
    x_padded: Sequence[int],
    input_grad: bool = True,
    bias: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(δx, ∂L/∂W, ∂L/∂b)`` from ``dy (N, C_out, *out)`` and the forward's input ``x``.

    δx is None when ``input_grad`` is False (nothing below needs it), ∂L/∂b when ``bias`` is.
    """
    n, c_out = dy.shape[:2]
    out = dy.shape[2:]
    p = math.prod(out)
    dyg = dy.reshape(n, c_out, p)
    w2 = w.reshape(c_out, -1)
    dwt = np.zeros(w2.shape[::-1], dtype=dy.dtype)  # (∂L/∂W)ᵀ: see the loop
    dxp = np.zeros(x_padded, dtype=dy.dtype) if input_grad else None
    parts, buf = _chunks(n, w2.shape[1], p, x.dtype)
    for part in parts:
        cols = im2col(x[part], geo, out, buf)  # (C*K, B*P), laid out again from x
        dyw = dyg[part]  # (B, C_out, P), sample-major
        if dxp is not None:  # the GEMMs want δy as (C_out, B*P)
            dyw = np.ascontiguousarray(dyw.swapaxes(0, 1)).reshape(c_out, -1)
        # ∂L/∂W = Σ_n δy[n] cols[n]ᵀ: the correlation of the input windows with δy, computed
        # transposed, cols δyᵀ: 15-30% faster in BLAS, and compiled dot products when small
        # (which read a first layer's sample-major δy in place, with no transposed copy)
        dwt += matmul_nt(cols, dyw)
        if dxp is not None:
            # δcols = Wᵀ δy, scattered back onto the windows they came from
            col2im(w2.T @ dyw, geo, out, dxp[part])
    db = bias_grad(dyg) if bias else None
    dw = np.ascontiguousarray(dwt.T).reshape(w.shape)
    return (None if dxp is None else unpad(dxp, geo[3])), dw, db
