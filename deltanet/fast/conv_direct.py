"""Direct convolution for layers with few taps, such as a network's first layer.

A first layer sees few input channels: LeNet's has one, so its 5x5 kernel has ``C*K = 25``
taps. As a GEMM that is a product ``(6, 25) @ (25, N*P)``: the windows take 25 times the input's
memory to lay out (im2col), and BLAS runs a 6-row product at a fraction of its speed. Computed
directly, each output map is a weighted sum of 25 shifted copies of the input, in long
unit-stride loops over data that stays in L1 (``direct_numba``), and its weight gradient needs
neither windows nor a transposed copy of δy. ``plan.conv_path`` says when this path runs.

The kernels are written for stride 1 and one group; see ``direct_numba`` for the "frame" they
loop over. The frame also holds cells that are not outputs (windows that wrap around a row's
end). For the weight gradient those cells multiply a zero δy by an input cell, so an inf or NaN
in the input would leak into taps that never see it: such inputs take the chunked steps
(``weight_grad`` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet.fast import lift3d
from deltanet.ops.window import Window, pad


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
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, win: Window
) -> tuple[np.ndarray, np.ndarray]:
    """``y = x ⋆ w + b`` directly: x (N, C, *in), w (C_out, C, *k) -> y (N, C_out, *out).

    Also returns the padded input, C-contiguous, which ``weight_grad`` reads.
    """
    from deltanet.fast import direct_numba  # imports numba: only once it runs

    n, c = x.shape[:2]
    xp = np.ascontiguousarray(pad(x, win.pads))
    y = np.empty((n, w.shape[0], *win.out), dtype=x.dtype)
    bias = np.zeros(w.shape[0], x.dtype) if b is None else np.ascontiguousarray(b, x.dtype)
    _, ph, pw = lift3d(xp.shape[2:])
    direct_numba.forward(
        xp.reshape(n, -1), np.ascontiguousarray(w).reshape(w.shape[0], -1),
        _offsets(xp.shape[2:], win.kernel, win.dilation, c), bias, ph, pw,
        y.reshape(n, w.shape[0], *lift3d(win.out)),
    )  # fmt: skip
    return y, xp


def weight_grad(dy: np.ndarray, xp: np.ndarray, win: Window) -> np.ndarray | None:
    """``∂L/∂W = x ⋆ δy`` directly, from the padded input ``xp`` that ``forward`` returned.

    None when ``xp`` holds an inf or NaN (see the top) or ``δy`` is of another dtype: the
    caller takes the chunked steps then.
    """
    if dy.dtype != xp.dtype or not np.isfinite(xp).all():
        return None
    from deltanet.fast import direct_numba

    n, c = xp.shape[:2]
    taps = np.zeros((c * math.prod(win.kernel), dy.shape[1]), dtype=dy.dtype)  # (∂L/∂W)ᵀ
    _, ph, pw = lift3d(xp.shape[2:])
    direct_numba.weight_grad(
        xp.reshape(n, -1), np.ascontiguousarray(dy).reshape(*dy.shape[:2], *lift3d(dy.shape[2:])),
        _offsets(xp.shape[2:], win.kernel, win.dilation, c), ph, pw, taps,
    )  # fmt: skip
    return np.ascontiguousarray(taps.T).reshape(dy.shape[1], c, *win.kernel)
