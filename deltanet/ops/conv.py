"""Convolution and transposed convolution for any number of spatial dims, forward and backward.

One implementation serves 1D, 2D and 3D. Convolution is cross-correlation, as in every framework:

    y[n, o, p] = sum_{c, k} x_pad[n, g(o)*C_g + c, p*stride + k*dilation] * w[o, c, k] + b[o]

computed as a GEMM: one copy lays the windows of the padded input out as ``cols`` of shape
``(G, C_g*K, N*P)`` (``im2col.py``), and ``np.matmul`` multiplies ``w (G, C_out/G, C_g*K)`` by
``cols``, with the groups as the batch dimension of the matmul, so grouped and depthwise
convolutions run without a Python loop over groups or channels. This is the reference;
``deltanet.fast.conv`` has the same signatures and caches, and picks faster paths by shape.

The transposed convolution is the adjoint of the convolution: its forward pass is the
convolution's backward pass with respect to the input, and its backward pass for the input is a
plain convolution, so both ops share the same three GEMM steps (``grouped_im2col``,
``backward_data``, ``weight_grad``). ``deltanet.fast.conv`` runs the same steps with its compiled
window copies, passed in as ``im2col`` and ``col2im``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from deltanet.ops.im2col import col2im, im2col
from deltanet.ops.window import (
    Pads,
    Window,
    as_tuple,
    output_size,
    resolve_padding,
    unpad,
)


class ConvPath(enum.Enum):
    """How a convolution's forward pass ran, and so what its cache keeps."""

    GEMM = "gemm"  # the whole batch's windows and one GEMM per group (this module)
    CHUNKED = "chunked"  # the windows a chunk of the batch at a time (deltanet.fast)
    DIRECT = "direct"  # loops over the input, no windows (deltanet.fast)
    WINOGRAD = "winograd"  # Winograd's transforms and batched GEMMs (deltanet.fast.winograd)


class ConvCache(NamedTuple):
    """What ``conv_backward`` needs from ``conv_forward``."""

    saved: np.ndarray  # GEMM: the windows cols (G, C_g*K, N*P); CHUNKED: x; DIRECT: padded x;
    # WINOGRAD: the transformed input tiles V (alpha², C_in, N*tiles)
    w: np.ndarray
    has_bias: bool
    window: Window
    padded_shape: tuple[int, ...]  # of x
    groups: int
    path: ConvPath


class ConvTransposeCache(NamedTuple):
    """What ``conv_transpose_backward`` needs from ``conv_transpose_forward``."""

    xg: np.ndarray  # x in the GEMM layout (G, C_in/G, N*P)
    x_shape: tuple[int, ...]
    w: np.ndarray
    has_bias: bool
    window: Window  # of the convolution whose adjoint this is: its output is x


# --- the shared GEMM steps -------------------------------------------------------------------


def to_gemm(a: np.ndarray, groups: int) -> np.ndarray:
    """``(N, C, *spatial)`` -> ``(G, C/G, N*P)``: channels x (batch, positions)."""
    n, c = a.shape[:2]
    cg, p = c // groups, math.prod(a.shape[2:])
    return a.reshape(n, groups, cg, p).transpose(1, 2, 0, 3).reshape(groups, cg, n * p)


def bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a @ b``; a contraction of length 1 (depthwise δcols) as the outer product it is.

    BLAS handles ``(M, 1) @ (1, P)`` several times slower than a broadcast multiply.
    """
    return a * b if a.shape[-1] == 1 else np.matmul(a, b)


def apply_weights(
    w: np.ndarray, cols: np.ndarray, b: np.ndarray | None, n: int, out: Sequence[int]
) -> np.ndarray:
    """``y = W · cols + b``.

    w: (C_out, C_g, *k), cols: (G, C_g*K, N*P), b: (C_out,) or None -> y: (N, C_out, *out).
    """
    g = cols.shape[0]
    y = bmm(w.reshape(g, w.shape[0] // g, -1), cols)  # (G, C_out/G, N*P)
    yt = y.reshape(w.shape[0], n, -1).swapaxes(0, 1)  # (N, C_out, P), a view
    res = np.empty(yt.shape, dtype=y.dtype)  # C order (np.add alone would keep yt's order)
    if b is None:
        np.copyto(res, yt)
    else:  # the bias rides along with the transposing copy: one pass over y instead of two
        np.add(yt, b[:, None], out=res)
    return res.reshape(n, w.shape[0], *out)


def bias_grad(dy: np.ndarray) -> np.ndarray:
    """``∂L/∂b = Σ δy`` over the batch and every position (b is added to each of them).

    Over the batch first, then along each contiguous map: NumPy walks one ``sum`` over both
    axes with a stride.
    """
    return dy.sum(axis=0).reshape(dy.shape[1], -1).sum(axis=1)


def grouped_im2col(
    x: np.ndarray,
    win: Window,
    groups: int,
    im2col: Callable[[np.ndarray, Window], np.ndarray] = im2col,
) -> np.ndarray:
    """The windows of the padded ``x (N, C, *in)`` as ``cols (G, C/G * K, N*P)`` (one copy).

    ``im2col`` lays them out as ``(C, *k, N, *out)``; the groups split the channels, so each
    group's rows are a contiguous block and the reshape is a view.
    """
    return im2col(x, win).reshape(groups, -1, x.shape[0] * math.prod(win.out))


def backward_data(
    dyg: np.ndarray,
    w: np.ndarray,
    win: Window,
    padded_shape: Sequence[int],
    col2im: Callable[[np.ndarray, Window, np.ndarray], None] = col2im,
) -> np.ndarray:
    """Adjoint of ``grouped_im2col`` then ``apply_weights``: ``dyg (G, C_out/G, N*P)`` -> ``dx``."""
    g = dyg.shape[0]
    # δcols = Wᵀ δy: (G, C_g*K, C_out/G) @ (G, C_out/G, N*P)
    dcols = bmm(w.reshape(g, w.shape[0] // g, -1).transpose(0, 2, 1), dyg)
    # scatter-add each window back onto the padded input (col2im), then drop the padding:
    # this is the "full convolution of δy with the kernel rotated by 180°", written as an adjoint
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    col2im(dcols.reshape(-1, dcols.shape[-1]), win, dxp)
    return unpad(dxp, win.pads)


def weight_grad(dyg: np.ndarray, cols: np.ndarray, w_shape: Sequence[int]) -> np.ndarray:
    """``∂L/∂W = δy · colsᵀ``: ``(G, C_out/G, N*P) @ (G, N*P, C_g*K)``, summed over batch and P."""
    return bmm(dyg, cols.transpose(0, 2, 1)).reshape(w_shape)


# --- convolution -----------------------------------------------------------------------------


def conv_geometry(
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: int | str | Sequence,
    dil: Sequence[int],
) -> tuple[Pads, tuple[int, ...]]:
    """``padding`` as ``(lo, hi)`` pairs, and the output size (unchecked: an axis may be < 1)."""
    pads = resolve_padding(padding, spatial, kernel, strides, dil)
    out = tuple(
        output_size(i, k, s, lo, hi, d)
        for i, k, s, (lo, hi), d in zip(spatial, kernel, strides, pads, dil)
    )
    return pads, out


def conv_window(
    x: np.ndarray,
    w: np.ndarray,
    stride: int | Sequence[int],
    padding: int | str | Sequence,
    dilation: int | Sequence[int],
    groups: int,
) -> Window:
    """The window of ``conv_forward``'s arguments, checked: the kernel fits the padded input."""
    nd = w.ndim - 2
    assert x.ndim == nd + 2 and x.shape[1] == w.shape[1] * groups and w.shape[0] % groups == 0
    kernel, spatial = tuple(w.shape[2:]), x.shape[2:]
    strides, dil = as_tuple(stride, nd, "stride"), as_tuple(dilation, nd, "dilation")
    pads, out = conv_geometry(spatial, kernel, strides, padding, dil)
    if min(out) < 1:
        raise ValueError(
            f"conv: the kernel is larger than the padded input. Received: input size "
            f"{tuple(spatial)}, padding {pads}, kernel_size {kernel}, dilation {dil} "
            f"(dilated kernel size {tuple(d * (k - 1) + 1 for k, d in zip(kernel, dil))})."
        )
    return Window(kernel, strides, dil, pads, out)


def conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """``y = x ⋆ w + b`` (cross-correlation), N-d, grouped.

    x: (N, C_in, *in), w: (C_out, C_in/groups, *k), b: (C_out,) or None -> y: (N, C_out, *out),
    ``out = floor((in + lo + hi - d*(k-1) - 1) / s) + 1``; cache for ``conv_backward``.
    """
    win = conv_window(x, w, stride, padding, dilation, groups)
    cols = grouped_im2col(x, win, groups)  # (G, C_g*K, N*P): one GEMM per group
    y = apply_weights(w, cols, b, x.shape[0], win.out)
    padded_shape = win.padded_shape(x.shape)
    return y, ConvCache(cols, w, b is not None, win, padded_shape, groups, ConvPath.GEMM)


def conv_backward(
    dy: np.ndarray, cache: ConvCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of ``conv_forward`` given ``dy = dL/dy (N, C_out, *out)``.

    -> dx: (N, C_in, *in) (None when not ``input_grad``: the first layer of a network needs no
    δ for its input), dw: (C_out, C_in/groups, *k), db: (C_out,) or None.
    """
    cols, w, has_bias, win, padded_shape, groups, path = cache
    if path is not ConvPath.GEMM:
        raise ValueError(
            f"conv_backward: this cache comes from the {path.value} path of "
            f"deltanet.fast.conv.conv_forward; pass it to deltanet.fast.conv.conv_backward."
        )
    # ∂L/∂b = Σ_{n, p} δy[n, :, p]
    db = bias_grad(dy) if has_bias else None
    dyg = to_gemm(dy, groups)
    # δx = δy ⊛ rot180(w) (full convolution), computed as its adjoint form:
    #      δcols = Wᵀ δy, scattered back onto the windows they came from (col2im), unpadded
    dx = backward_data(dyg, w, win, padded_shape) if input_grad else None
    # ∂L/∂w = x ⋆ δy: the correlation of the input windows with δy, i.e. δy · colsᵀ
    dw = weight_grad(dyg, cols, w.shape)
    return dx, dw, db


# --- transposed convolution: the adjoint of convolution --------------------------------------


def conv_transpose_window(
    x: np.ndarray,
    w: np.ndarray,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    output_padding: int | Sequence[int],
    dilation: int | Sequence[int],
    groups: int,
) -> tuple[Window, tuple[int, ...]]:
    """The window of the convolution whose adjoint ``conv_transpose_forward`` computes, checked,
    and the padded shape of y."""
    nd = w.ndim - 2
    assert x.ndim == nd + 2 and x.shape[1] == w.shape[0] and w.shape[0] % groups == 0
    kernel, spatial = tuple(w.shape[2:]), x.shape[2:]
    strides, dil = as_tuple(stride, nd, "stride"), as_tuple(dilation, nd, "dilation")
    pad_, out_pad = as_tuple(padding, nd, "padding"), as_tuple(output_padding, nd, "output_padding")
    assert min(pad_) >= 0 and min(out_pad) >= 0
    for op, s, d in zip(out_pad, strides, dil):
        if op >= s and op >= d:
            raise ValueError(
                f"conv_transpose: output_padding must be smaller than stride or dilation. "
                f"Received: output_padding={out_pad}, stride={strides}, dilation={dil}."
            )
    out = tuple(
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        for i, s, p, d, k, op in zip(spatial, strides, pad_, dil, kernel, out_pad)
    )
    if min(out) < 1:
        raise ValueError(
            f"conv_transpose: the output would be empty: (in - 1)*stride - 2*padding + "
            f"dilation*(kernel_size - 1) + output_padding + 1 = {out}. Received: input size "
            f"{tuple(spatial)}, padding {pad_}, kernel_size {kernel}, stride {strides}, "
            f"dilation {dil}, output_padding {out_pad}."
        )
    win = Window(kernel, strides, dil, tuple((p, p) for p in pad_), tuple(spatial))
    return win, (x.shape[0], w.shape[1] * groups, *(o + 2 * p for o, p in zip(out, pad_)))


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
    """Transposed convolution (PyTorch's ``conv_transpose``): the adjoint of ``conv_forward``.

    x: (N, C_in, *in), w: (C_in, C_out/groups, *k), b: (C_out,) or None -> y: (N, C_out, *out),
    ``out = (in - 1)*s - 2p + d*(k-1) + output_padding + 1``; cache for ``conv_transpose_backward``.
    """
    win, padded_shape = conv_transpose_window(
        x, w, stride, padding, output_padding, dilation, groups
    )
    # y = Aᵀ x where A is the convolution that maps y's shape onto x's shape with the same w:
    # the convolution's backward pass for the input (the padded tail that output_padding adds
    # and no window reaches stays zero)
    xg = to_gemm(x, groups)
    y = backward_data(xg, w, win, padded_shape)
    if b is not None:
        y = y + b.reshape(-1, *(1,) * len(win.kernel))
    return y, ConvTransposeCache(xg, x.shape, w, b is not None, win)


def conv_transpose_backward(
    dy: np.ndarray, cache: ConvTransposeCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of ``conv_transpose_forward`` given ``dy = dL/dy (N, C_out, *out)``.

    -> dx: (N, C_in, *in) (None when not ``input_grad``), dw: (C_in, C_out/groups, *k),
    db: (C_out,) or None.
    """
    xg, x_shape, w, has_bias, win = cache
    # δx = A δy: a plain convolution of δy with w (w's layout is already the conv layout of A),
    # keeping only the windows that exist in x (more can fit when output_padding >= stride)
    cols = grouped_im2col(dy, win, xg.shape[0])
    dx = apply_weights(w, cols, None, x_shape[0], win.out) if input_grad else None
    # ∂L/∂w: A's weight gradient with the roles swapped: x plays δy, δy plays A's input
    dw = weight_grad(xg, cols, w.shape)
    # ∂L/∂b = Σ_{n, p} δy[n, :, p]
    db = bias_grad(dy) if has_bias else None
    return dx, dw, db
