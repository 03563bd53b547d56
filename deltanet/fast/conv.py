"""Convolution and transposed convolution on the planned path: ``ops/conv.py``'s signatures.

``plan.conv_path`` picks one of four ways to the same numbers by shape: direct loops for few
taps (``conv_direct.py``), Winograd's transforms for 3x3 stride-1 layers with many channels
(``winograd.py``), the GEMM a chunk of the batch at a time for large windows
(``conv_chunked.py``), or ``ops/conv.py``'s whole-batch GEMM, here with the compiled window
copies (``fast/im2col.py``) and the weight gradient's thin products (``thin_matmul.py``). The
cache is an ``ops.conv.ConvCache`` whose ``path`` says which; ``conv_backward`` takes any.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deltanet.fast import conv_chunked, conv_direct, plan, winograd
from deltanet.fast.im2col import col2im, im2col
from deltanet.fast.thin_matmul import matmul_nt
from deltanet.ops.conv import (
    ConvCache,
    ConvPath,
    ConvTransposeCache,
    apply_weights,
    backward_data,
    bias_grad,
    conv_transpose_window,
    conv_window,
    grouped_im2col,
    to_gemm,
    weight_grad,
)
from deltanet.ops.window import unpad

# --- the weight gradient with the thin products (the other steps are ops/conv.py's) ----------


def _weight_grad(dyg: np.ndarray, cols: np.ndarray, w_shape: Sequence[int]) -> np.ndarray:
    """``∂L/∂W = δy · colsᵀ`` (``ops.conv.weight_grad``), with the thin products for one group.

    With one group ``dyg`` may also be δy as the layer holds it, ``(N, C_out, P)``.
    """
    if cols.shape[0] == 1:  # one group: often a small result from a long contraction
        # computed transposed, cols δyᵀ, which BLAS runs faster; the compiled dot products
        # read a sample-major δy in place
        return matmul_nt(cols[0], dyg).T.reshape(w_shape)
    return weight_grad(dyg, cols, w_shape)


# --- convolution -----------------------------------------------------------------------------


def conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    *,
    algorithm: str = "auto",
) -> tuple[np.ndarray, ConvCache]:
    """``ops.conv.conv_forward`` on the path the plan picks for these shapes, or the one
    ``algorithm`` names (``"gemm"``, ``"winograd"``, ``"direct"``; ``plan.conv_path``)."""
    win = conv_window(x, w, stride, padding, dilation, groups)
    path = plan.conv_path(x, w, win, groups, algorithm)
    if path is ConvPath.WINOGRAD:
        y, saved = winograd.forward(x, w, b, win, groups)  # saved: the transformed input tiles
    elif path is ConvPath.DIRECT:
        y, saved = conv_direct.forward(x, w, b, win)  # saved: the padded input
    elif path is ConvPath.CHUNKED:
        y, saved = conv_chunked.forward(x, w, b, win), x  # windows laid out again in backward
    else:
        saved = grouped_im2col(x, win, groups, im2col)
        y = apply_weights(w, saved, b, x.shape[0], win.out)
    padded_shape = win.padded_shape(x.shape)
    return y, ConvCache(saved, w, b is not None, win, padded_shape, groups, path)


def conv_backward(
    dy: np.ndarray, cache: ConvCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``ops.conv.conv_backward`` for a cache of any path."""
    saved, w, has_bias, win, padded_shape, groups, path = cache
    if path is ConvPath.WINOGRAD:  # the cache holds the transformed input tiles
        x_spatial = tuple(n - lo - hi for n, (lo, hi) in zip(padded_shape[2:], win.pads))
        wdx = winograd.backward_data(dy, w, win, groups, x_spatial) if input_grad else None
        wdw = winograd.weight_grad(dy, saved, w.shape, win, groups)
        return wdx, wdw, bias_grad(dy) if has_bias else None
    if path is ConvPath.DIRECT:  # the cache holds the padded input
        dw = None if input_grad else conv_direct.weight_grad(dy, saved, win)
        if dw is not None:
            return None, dw, bias_grad(dy) if has_bias else None
        # δx (or an input with inf or NaN): the chunked steps, which lay the windows out again
        saved, path = unpad(saved, win.pads), ConvPath.CHUNKED
    if path is ConvPath.CHUNKED:  # the cache holds x
        return conv_chunked.backward(dy, saved, w, win, padded_shape, input_grad, has_bias)
    db = bias_grad(dy) if has_bias else None
    dx = None
    if input_grad:
        dyg = to_gemm(dy, groups)
        dx = backward_data(dyg, w, win, padded_shape, col2im)
    elif groups == 1:  # a first layer: the weight gradient reads δy in place, no GEMM layout
        dyg = dy.reshape(*dy.shape[:2], -1)
    else:
        dyg = to_gemm(dy, groups)
    return dx, _weight_grad(dyg, saved, w.shape), db


# --- transposed convolution ------------------------------------------------------------------


def conv_transpose_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvTransposeCache]:
    """``ops.conv.conv_transpose_forward`` with the fast window copies."""
    win, padded_shape = conv_transpose_window(
        x, w, stride, padding, output_padding, dilation, groups
    )
    xg = to_gemm(x, groups)
    y = backward_data(xg, w, win, padded_shape, col2im)
    if b is not None:
        y = y + b.reshape(-1, *(1,) * len(win.kernel))
    return y, ConvTransposeCache(xg, x.shape, w, b is not None, win)


def conv_transpose_backward(
    dy: np.ndarray, cache: ConvTransposeCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``ops.conv.conv_transpose_backward`` with the fast window copies and products."""
    xg, x_shape, w, has_bias, win = cache
    cols = grouped_im2col(dy, win, xg.shape[0], im2col)
    dx = apply_weights(w, cols, None, x_shape[0], win.out) if input_grad else None
    dw = _weight_grad(xg, cols, w.shape)
    return dx, dw, bias_grad(dy) if has_bias else None
