"""Convolution and transposed convolution for any number of spatial dims, forward and backward.

One implementation serves 1D, 2D and 3D. Convolution is cross-correlation, as in every framework:

    y[n, o, p] = sum_{c, k} x_pad[n, g(o)*C_g + c, p*stride + k*dilation] * w[o, c, k] + b[o]

computed as a GEMM: one copy lays the windows of the padded input out as ``cols`` of shape
``(G, C_g*K, N*P)`` (``im2col.py``), and ``np.matmul`` multiplies ``w (G, C_out/G, C_g*K)`` by
``cols``, with the groups as the batch dimension of the matmul, so grouped and depthwise
convolutions run without a Python loop over groups or channels. Layers whose windows would take
more than a few MB (``groups == 1``) go through the same steps a chunk of the batch at a time,
so the windows stay in the cache (``conv_chunked.py``), and layers with few taps (a first layer)
skip the windows and the GEMM: direct loops over the input (``conv_direct.py``). The GEMM path
is the reference; the tests compare the other two with it and with naive loops.

The transposed convolution is the adjoint of the convolution: its forward pass is the
convolution's backward pass with respect to the input, and its backward pass for the input is a
plain convolution, so both ops share the same three private GEMM steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet.ops import conv_chunked, conv_direct
from deltanet.ops.conv_chunked import bias_grad
from deltanet.ops.im2col import Geometry, col2im, im2col
from deltanet.ops.thin_matmul import matmul_nt
from deltanet.ops.window import as_tuple, output_size, resolve_padding, unpad

# --- the shared GEMM steps -------------------------------------------------------------------


def _to_gemm(a: np.ndarray, groups: int) -> np.ndarray:
    """``(N, C, *spatial)`` -> ``(G, C/G, N*P)``: channels x (batch, positions)."""
    n, c = a.shape[:2]
    cg, p = c // groups, math.prod(a.shape[2:])
    return a.reshape(n, groups, cg, p).transpose(1, 2, 0, 3).reshape(groups, cg, n * p)


def _from_gemm(m: np.ndarray, n: int, spatial: Sequence[int]) -> np.ndarray:
    """``(G, C/G, N*P)`` -> ``(N, C, *spatial)``, contiguous."""
    g, cg, _ = m.shape
    return np.ascontiguousarray(m.reshape(g * cg, n, *spatial).swapaxes(0, 1))


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a @ b``; a contraction of length 1 (depthwise δcols) as the outer product it is.

    BLAS handles ``(M, 1) @ (1, P)`` several times slower than a broadcast multiply.
    """
    return a * b if a.shape[-1] == 1 else np.matmul(a, b)


def _im2col(x: np.ndarray, geo: Geometry, out: Sequence[int], groups: int) -> np.ndarray:
    """The windows of the padded ``x (N, C, *in)`` as ``cols (G, C/G * K, N*P)`` (one copy).

    ``im2col`` lays them out as ``(C, *k, N, *out)``; the groups split the channels, so each
    group's rows are a contiguous block and the reshape is a view.
    """
    return im2col(x, geo, out).reshape(groups, -1, x.shape[0] * math.prod(out))


def _apply(
    w: np.ndarray, cols: np.ndarray, b: np.ndarray | None, n: int, out: Sequence[int]
) -> np.ndarray:
    """``y = W · cols + b``.

    w: (C_out, C_g, *k), cols: (G, C_g*K, N*P), b: (C_out,) or None -> y: (N, C_out, *out).
    """
    g = cols.shape[0]
    y = _bmm(w.reshape(g, w.shape[0] // g, -1), cols)  # (G, C_out/G, N*P)
    if b is None:
        return _from_gemm(y, n, out)
    # the bias rides along with the transposing copy: one pass over y instead of two
    yt = y.reshape(w.shape[0], n, -1).swapaxes(0, 1)  # (N, C_out, P), a view
    res = np.empty(yt.shape, dtype=y.dtype)  # C order (np.add alone would keep yt's order)
    np.add(yt, b[:, None], out=res)
    return res.reshape(n, w.shape[0], *out)


def _backward_data(
    dyg: np.ndarray, w: np.ndarray, geo: Geometry, padded_shape: Sequence[int], out: Sequence[int]
) -> np.ndarray:
    """Adjoint of ``_im2col`` then ``_apply``: ``dyg (G, C_out/G, N*P)`` -> ``dx (N, C, *in)``."""
    kernel, _, _, pads = geo
    g, cg = dyg.shape[0], w.shape[1]
    # δcols = Wᵀ δy: (G, C_g*K, C_out/G) @ (G, C_out/G, N*P)
    dcols = _bmm(w.reshape(g, w.shape[0] // g, -1).transpose(0, 2, 1), dyg)
    # scatter-add each window back onto the padded input (col2im), then drop the padding:
    # this is the "full convolution of δy with the kernel rotated by 180°", written as an adjoint
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    col2im(dcols.reshape(g * cg * math.prod(kernel), -1), geo, out, dxp)
    return unpad(dxp, pads)


def _weight_grad(dyg: np.ndarray, cols: np.ndarray, w_shape: Sequence[int]) -> np.ndarray:
    """``∂L/∂W = δy · colsᵀ``: ``(G, C_out/G, N*P) @ (G, N*P, C_g*K)``, summed over batch and P.

    With one group ``dyg`` may also be δy as the layer holds it, ``(N, C_out, P)``.
    """
    if cols.shape[0] == 1:  # one group: often a small result from a long contraction
        # computed transposed, cols δyᵀ (faster in BLAS); the compiled dot products read a
        # sample-major δy in place
        return matmul_nt(cols[0], dyg).T.reshape(w_shape)
    return _bmm(dyg, cols.transpose(0, 2, 1)).reshape(w_shape)


# --- convolution -----------------------------------------------------------------------------


def conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[np.ndarray, tuple]:
    """``y = x ⋆ w + b`` (cross-correlation), N-d, grouped.

    x: (N, C_in, *in), w: (C_out, C_in/groups, *k), b: (C_out,) or None -> y: (N, C_out, *out),
    ``out = floor((in + lo + hi - d*(k-1) - 1) / s) + 1``; cache for ``conv_backward``.
    """
    nd = w.ndim - 2
    assert x.ndim == nd + 2 and x.shape[1] == w.shape[1] * groups and w.shape[0] % groups == 0
    kernel, spatial = w.shape[2:], x.shape[2:]
    stride, dilation = as_tuple(stride, nd, "stride"), as_tuple(dilation, nd, "dilation")
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    out = tuple(
        output_size(i, k, s, lo, hi, d)
        for i, k, s, (lo, hi), d in zip(spatial, kernel, stride, pads, dilation)
    )
    if min(out) < 1:
        raise ValueError(
            f"conv: the kernel is larger than the padded input. Received: input size "
            f"{tuple(spatial)}, padding {pads}, kernel_size {tuple(kernel)}, dilation {dilation} "
            f"(dilated kernel size {tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))})."
        )
    geo = (kernel, stride, dilation, pads)
    # three ways to the same numbers, picked by shape: "direct", "chunked" or "gemm"
    if conv_direct.use_direct(x, w, geo, out, groups):
        path = "direct"
        y, cols = conv_direct.forward(x, w, b, geo, out)  # cols: the padded input
    elif groups == 1 and conv_chunked.use_chunked(x.shape, w.shape, out):
        path = "chunked"
        cols = x  # the windows are laid out again, chunk by chunk, in the backward pass
        y = conv_chunked.forward(x, w, b, geo, out)
    else:
        path = "gemm"
        cols = _im2col(x, geo, out, groups)  # (G, C_g*K, N*P): one GEMM per group
        y = _apply(w, cols, b, x.shape[0], out)
    padded_shape = (*x.shape[:2], *(s + lo + hi for s, (lo, hi) in zip(spatial, pads)))
    return y, (cols, w, b is not None, geo, padded_shape, groups, path)


def conv_backward(
    dy: np.ndarray, cache: tuple, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of ``conv_forward`` given ``dy = dL/dy (N, C_out, *out)``.

    -> dx: (N, C_in, *in) (None when not ``input_grad``: the first layer of a network needs no
    δ for its input), dw: (C_out, C_in/groups, *k), db: (C_out,) or None.
    """
    cols, w, has_bias, geo, padded_shape, groups, path = cache
    if path == "direct":  # the cache holds the padded input
        dw = None if input_grad else conv_direct.weight_grad(dy, cols, geo)
        if dw is not None:
            return None, dw, bias_grad(dy) if has_bias else None
        # δx (or an input with inf or NaN): the chunked steps, which lay the windows out again
        cols, path = unpad(cols, geo[3]), "chunked"
    if path == "chunked":  # the cache holds x, whose windows are laid out again chunk by chunk
        return conv_chunked.backward(dy, cols, w, geo, padded_shape, input_grad, has_bias)
    # ∂L/∂b = Σ_{n, p} δy[n, :, p]
    db = bias_grad(dy) if has_bias else None
    # δx = δy ⊛ rot180(w) (full convolution), computed as its adjoint form:
    #      δcols = Wᵀ δy, scattered back onto the windows they came from (col2im), unpadded
    dx = None
    if input_grad:
        dyg = _to_gemm(dy, groups)
        dx = _backward_data(dyg, w, geo, padded_shape, dy.shape[2:])
    elif groups == 1:  # a first layer: the weight gradient reads δy in place, no GEMM layout
        dyg = dy.reshape(*dy.shape[:2], -1)
    else:
        dyg = _to_gemm(dy, groups)
    # ∂L/∂w = x ⋆ δy: the correlation of the input windows with δy, i.e. δy · colsᵀ
    dw = _weight_grad(dyg, cols, w.shape)
    return dx, dw, db


# --- transposed convolution: the adjoint of convolution --------------------------------------


def conv_transpose_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[np.ndarray, tuple]:
    """Transposed convolution (PyTorch's ``conv_transpose``): the adjoint of ``conv_forward``.

    x: (N, C_in, *in), w: (C_in, C_out/groups, *k), b: (C_out,) or None -> y: (N, C_out, *out),
    ``out = (in - 1)*s - 2p + d*(k-1) + output_padding + 1``; cache for ``conv_transpose_backward``.
    """
    nd = w.ndim - 2
    assert x.ndim == nd + 2 and x.shape[1] == w.shape[0] and w.shape[0] % groups == 0
    kernel, spatial = w.shape[2:], x.shape[2:]
    stride, dilation = as_tuple(stride, nd, "stride"), as_tuple(dilation, nd, "dilation")
    pad_, out_pad = as_tuple(padding, nd, "padding"), as_tuple(output_padding, nd, "output_padding")
    assert min(pad_) >= 0 and min(out_pad) >= 0
    for op, s, d in zip(out_pad, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(
                f"conv_transpose: output_padding must be smaller than stride or dilation. "
                f"Received: output_padding={out_pad}, stride={stride}, dilation={dilation}."
            )
    out = tuple(
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        for i, s, p, d, k, op in zip(spatial, stride, pad_, dilation, kernel, out_pad)
    )
    if min(out) < 1:
        raise ValueError(
            f"conv_transpose: the output would be empty: (in - 1)*stride - 2*padding + "
            f"dilation*(kernel_size - 1) + output_padding + 1 = {out}. Received: input size "
            f"{tuple(spatial)}, padding {pad_}, kernel_size {tuple(kernel)}, stride {stride}, "
            f"dilation {dilation}, output_padding {out_pad}."
        )
    geo = (kernel, stride, dilation, tuple((p, p) for p in pad_))
    padded_shape = (x.shape[0], w.shape[1] * groups, *(o + 2 * p for o, p in zip(out, pad_)))
    # y = Aᵀ x where A is the convolution that maps y's shape onto x's shape with the same w:
    # the convolution's backward pass for the input (the padded tail that output_padding adds
    # and no window reaches stays zero)
    xg = _to_gemm(x, groups)
    y = _backward_data(xg, w, geo, padded_shape, spatial)
    if b is not None:
        y = y + b.reshape(-1, *(1,) * nd)
    return y, (xg, x.shape, w, b is not None, geo)


def conv_transpose_backward(
    dy: np.ndarray, cache: tuple, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of ``conv_transpose_forward`` given ``dy = dL/dy (N, C_out, *out)``.

    -> dx: (N, C_in, *in) (None when not ``input_grad``), dw: (C_in, C_out/groups, *k),
    db: (C_out,) or None.
    """
    xg, x_shape, w, has_bias, geo = cache
    # δx = A δy: a plain convolution of δy with w (w's layout is already the conv layout of A),
    # keeping only the windows that exist in x (more can fit when output_padding >= stride)
    cols = _im2col(dy, geo, x_shape[2:], xg.shape[0])
    dx = _apply(w, cols, None, x_shape[0], x_shape[2:]) if input_grad else None
    # ∂L/∂w: A's weight gradient with the roles swapped: x plays δy, δy plays A's input
    dw = _weight_grad(xg, cols, w.shape)
    # ∂L/∂b = Σ_{n, p} δy[n, :, p]
    db = bias_grad(dy) if has_bias else None
    return dx, dw, db
