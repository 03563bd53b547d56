"""Direct convolution for layers with few taps, such as a network's first layer.

A first layer sees few input channels: LeNet's has one, so its 5x5 kernel has ``C*K = 25``
taps. As a GEMM that is a product ``(6, 25) @ (25, N*P)``: the windows take 25 times the input's
memory to lay out (im2col), and BLAS runs a 6-row product at a fraction of its speed (28
GFLOP/s here). Computed directly, each output map is a weighted sum of 25 shifted copies of the
input, in long unit-stride loops over data that stays in L1 (``direct_kernels``): LeNet's first
convolution at batch 256 takes 1.6-1.8 ms against 4.5-5 ms (3.2 times less at batch 64), and
its weight gradient needs neither windows nor a transposed copy of δy. Measured against the
GEMM path here, forward: 27 taps (3x3 on 3 channels) 0.75x the time, 36 and 72 taps 0.87x,
75 taps 1.02x, 150 (LeNet's second layer) 0.95x. Past a few dozen taps the two are close when
the machine is quiet, but these loops do not depend on a cache shared with other machines: with
the neighbours busy, LeNet-5's inference ran 7-14% faster with its second layer direct too
(``use_direct`` says when). On short frames (MNIST-1D's 40 cells, 64 filters) the fixed cost
of each pass over the frame makes them 1.75x slower, and the GEMM path keeps those layers.

The kernels are written for stride 1 and one group; see ``direct_kernels`` for the "frame"
they loop over. The frame also holds cells that are not outputs (windows that wrap around a
row's end): 14% more cells for LeNet's 28x28 maps, 26% for a 16^3 volume. For the weight
gradient those cells multiply a zero δy by an input cell, so an inf or NaN in the input would
leak into taps that never see it: such inputs take the GEMM path (``weight_grad`` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet import compiled
from deltanet.ops import conv_chunked
from deltanet.ops.im2col import Geometry
from deltanet.ops.window import lift3d, pad

_MAX_TAPS = 32  # C_in * kernel cells up to which the direct loops clearly win (measured above)
_MAX_TAPS_LONG = 256  # ... and up to which they hold their own on large layers (see use_direct)
_LONG_FRAME = 128  # cells of the frame from which a pass over it pays its fixed cost
_MAX_FILTERS_LONG = 32  # filters up to which (more make the GEMM efficient)
_MAX_FRAME = 1.5  # frame cells per output cell up to which the extra cells are worth it


def _frame(padded: Sequence[int], out: Sequence[int]) -> int:
    """Cells of the frame: from the first output cell to the last, in the padded input's rows."""
    (_, ph, pw), (od, oh, ow) = lift3d(padded), lift3d(out)
    return ((od - 1) * ph + oh - 1) * pw + ow


def use_direct(
    x: np.ndarray, w: np.ndarray, geo: Geometry, out: Sequence[int], groups: int
) -> bool:
    """Whether ``conv_forward`` runs the direct loops: few taps, stride 1, one group, compiled.

    Up to 32 taps, always. Up to 256 (LeNet's second layer has 150) only on a long frame with
    few filters, and only where the GEMM path would go through the batch in chunks: there the
    backward pass lays the windows out again anyway, while a smaller layer keeps its windows
    from the forward GEMM for the backward one (LeNet-5 at batch 64 trained 1-8% slower with
    its second layer direct; at batch 256 8-16% faster, and inference 7-14% faster).
    """
    kernel, stride, _, pads = geo
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads)]
    taps, frame = math.prod(w.shape[1:]), _frame(padded, out)
    few = taps <= _MAX_TAPS or (
        taps <= _MAX_TAPS_LONG
        and frame >= _LONG_FRAME
        and w.shape[0] <= _MAX_FILTERS_LONG
        and conv_chunked.use_chunked(x.shape, w.shape, out)
    )
    return (
        groups == 1
        and all(s == 1 for s in stride)
        and few
        and x.dtype == w.dtype
        and x.dtype in (np.float32, np.float64)
        and frame <= _MAX_FRAME * math.prod(out)
        and compiled.enabled()
    )


def _offsets(
    padded: Sequence[int], kernel: Sequence[int], dilation: Sequence[int], c: int
) -> np.ndarray:
    """Flat displacement of each tap ``(channel, *kernel cell)`` in a padded sample (w's order)."""
    pd, ph, pw = lift3d(padded)
    (kd, kh, kw), (dd, dh, dw) = lift3d(kernel), lift3d(dilation)
    cell = (np.arange(kd)[:, None, None] * dd * ph + np.arange(kh)[:, None] * dh) * pw
    cell = cell + np.arange(kw) * dw  # (kd, kh, kw)
    plane = np.arange(c)[:, None] * (pd * ph * pw)
    return (plane + cell.ravel()).ravel().astype(np.uint64)


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: Geometry, out: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``y = x ⋆ w + b`` directly: x (N, C, *in), w (C_out, C, *k) -> y (N, C_out, *out).

    Also returns the padded input, C-contiguous, which ``weight_grad`` reads.
    """
    from deltanet.ops import direct_kernels  # imports numba: only once compiled kernels run

    kernel, _, dilation, pads = geo
    n, c = x.shape[:2]
    xp = np.ascontiguousarray(pad(x, pads))
    y = np.empty((n, w.shape[0], *out), dtype=x.dtype)
    bias = np.zeros(w.shape[0], x.dtype) if b is None else np.ascontiguousarray(b, x.dtype)
    _, ph, pw = lift3d(xp.shape[2:])
    direct_kernels.forward(
        xp.reshape(n, -1), np.ascontiguousarray(w).reshape(w.shape[0], -1),
        _offsets(xp.shape[2:], kernel, dilation, c), bias, ph, pw,
        y.reshape(n, w.shape[0], *lift3d(out)),
    )  # fmt: skip
    return y, xp


def weight_grad(dy: np.ndarray, xp: np.ndarray, geo: Geometry) -> np.ndarray | None:
    """``∂L/∂W = x ⋆ δy`` directly, from the padded input ``xp`` that ``forward`` returned.

    None when ``xp`` holds an inf or NaN (see the top) or ``δy`` is of another dtype: the
    caller takes the GEMM path then.
    """
    if dy.dtype != xp.dtype or not np.isfinite(xp).all():
        return None
    from deltanet.ops import direct_kernels

    kernel, _, dilation, _ = geo
    n, c = xp.shape[:2]
    taps = np.zeros((c * math.prod(kernel), dy.shape[1]), dtype=dy.dtype)  # (∂L/∂W)ᵀ
    _, ph, pw = lift3d(xp.shape[2:])
    direct_kernels.weight_grad(
        xp.reshape(n, -1), np.ascontiguousarray(dy).reshape(*dy.shape[:2], *lift3d(dy.shape[2:])),
        _offsets(xp.shape[2:], kernel, dilation, c), ph, pw, taps,
    )  # fmt: skip
    return np.ascontiguousarray(taps.T).reshape(dy.shape[1], c, *kernel)
