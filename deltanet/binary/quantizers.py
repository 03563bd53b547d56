"""Quantizers of binary and low-bit networks (BMXNet, XNOR-Net, DoReFa), forward and backward.

Rounding has a zero derivative almost everywhere, so every backward pass here is a
straight-through estimator (STE): the gradient of a smooth surrogate that the quantizer follows.

- ``sign``: ``y = +1 if x >= 0 else -1`` (``sign(0) = +1``); surrogate ``hardtanh``, so
  ``dx = dy * 1[|x| <= clip]``.
- ``approx_sign`` (Bi-Real Net): the same forward; surrogate the piecewise quadratic
  ``2x - x|x|`` on [-1, 1], so ``dx = dy * (2 - 2|x|) * 1[|x| <= 1]``.
- ``quantize_act`` (k bits, DoReFa activations): ``y = round((2^k - 1) clip(x, 0, 1)) / (2^k - 1)``;
  surrogate ``clip(x, 0, 1)``, so ``dx = dy * 1[0 <= x <= 1]``. 1 bit is ``sign``, 32 the identity.
- ``quantize_weight`` (k bits): 1 bit ``alpha * sign(w)``; 2..31 bits DoReFa,
  ``alpha * (2 q_k(tanh(w) / (2 max|tanh w|) + 1/2) - 1)``; 32 bits ``w``. ``alpha`` is 1
  (``scaling="none"``), ``mean|w|`` (``"layer"``, BMXNet) or ``||w_o||_1 / n`` per output filter
  (``"channel"``, XNOR-Net). ``alpha`` is a constant for the gradient, as in BMXNet.

Every ``*_forward`` returns ``(y, cache)``; every ``*_backward(dy, cache)`` returns ``(dx,)``.
"""

from __future__ import annotations

import numpy as np

SCALINGS = ("none", "layer", "channel")


# --- sign with the straight-through estimator ---------------------------------------------------


def sign_forward(x: np.ndarray, clip: float = 1.0) -> tuple[np.ndarray, tuple]:
    """``y = sign(x)`` in {-1, +1}, ``sign(0) = +1``; same shape and dtype."""
    y = np.where(x >= 0, 1, -1).astype(x.dtype, copy=False)
    return y, (x, clip)


def sign_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy * 1[|x| <= clip]`` (the derivative of hardtanh, the STE)."""
    x, clip = cache
    return (np.where(np.abs(x) <= clip, dy, 0).astype(dy.dtype, copy=False),)


def approx_sign_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``y = sign(x)``, ``sign(0) = +1``; the backward follows ``2x - x|x|`` on [-1, 1]."""
    return sign_forward(x)[0], (x,)


def approx_sign_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy * (2 - 2|x|) * 1[|x| <= 1]``."""
    (x,) = cache
    a = np.abs(x)
    return (np.where(a <= 1, dy * (2 - 2 * a), 0).astype(dy.dtype, copy=False),)


# --- k-bit activations ----------------------------------------------------------------------------


def quantize_act_forward(x: np.ndarray, bits: int) -> tuple[np.ndarray, tuple]:
    """k-bit activation: 1 bit ``sign``, 2..31 bits ``round((2^k-1) clip(x,0,1)) / (2^k-1)``."""
    _check_bits("quantize_act", bits)
    if bits == 1:
        y, cache = sign_forward(x)
        return y, (1, cache)
    if bits == 32:
        return x, (32, None)
    n = float(2**bits - 1)
    y = (np.round(np.clip(x, 0, 1) * n) / n).astype(x.dtype, copy=False)
    return y, (bits, x)


def quantize_act_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """STE: 1 bit as ``sign``; k bits ``dx = dy * 1[0 <= x <= 1]``; 32 bits ``dx = dy``."""
    bits, inner = cache
    if bits == 1:
        return sign_backward(dy, inner)
    if bits == 32:
        return (dy,)
    x = inner
    return (np.where((x >= 0) & (x <= 1), dy, 0).astype(dy.dtype, copy=False),)


# --- k-bit weights with scaling -------------------------------------------------------------------


def weight_scale(w: np.ndarray, scaling: str) -> np.ndarray:
    """``alpha``: 1, ``mean|w|`` or ``||w_o||_1 / n`` per output filter (broadcasts on w)."""
    if scaling not in SCALINGS:
        raise ValueError(f"weight_scale: scaling must be one of {SCALINGS}. Received: {scaling!r}.")
    if scaling == "none":
        return np.ones((1,) * w.ndim, w.dtype)
    if scaling == "layer":
        return np.mean(np.abs(w), keepdims=True).astype(w.dtype)
    return np.mean(np.abs(w), axis=tuple(range(1, w.ndim)), keepdims=True).astype(w.dtype)


def quantize_weight_forward(w: np.ndarray, bits: int, scaling: str) -> tuple[np.ndarray, tuple]:
    """``wq = alpha * q_k(w)``: w (C_out, ...) -> wq the same shape and dtype."""
    _check_bits("quantize_weight", bits)
    if bits == 32:
        return w, (32, None, None)
    alpha = weight_scale(w, scaling)
    if bits == 1:
        return alpha * sign_forward(w)[0], (1, w, alpha)
    t = np.tanh(w)
    m = np.max(np.abs(t))
    m = m if m > 0 else w.dtype.type(1)
    n = float(2**bits - 1)
    q = np.round((t / (2 * m) + 0.5) * n) / n
    return (alpha * (2 * q - 1)).astype(w.dtype, copy=False), (bits, w, alpha)


def quantize_weight_backward(dwq: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """STE. 1 bit: ``dw = alpha dwq 1[|w| <= 1]``; k bits: the derivative of the surrogate.

    The DoReFa surrogate ``s(w) = tanh(w) / M``, ``M = max|tanh w|`` at index ``j``, gives
    ``ds_i/dw_i = (1 - tanh²w_i) / M`` and, through M, ``-tanh(w_i) / M² * dM/dw_j`` with
    ``dM/dw_j = sign(t_j) (1 - t_j²)``.
    """
    bits, w, alpha = cache
    if bits == 32:
        return (dwq,)
    g = dwq * alpha
    if bits == 1:
        return (np.where(np.abs(w) <= 1, g, 0).astype(dwq.dtype, copy=False),)
    t = np.tanh(w)
    j = np.argmax(np.abs(t))
    m = np.abs(t).flat[j]
    if m == 0:
        return (g * (1 - t * t),)
    dw = g * (1 - t * t) / m
    dw.flat[j] -= np.sum(g * t) / (m * m) * np.sign(t.flat[j]) * (1 - t.flat[j] ** 2)
    return (dw.astype(dwq.dtype, copy=False),)


def _check_bits(where: str, bits: object) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 32:
        raise ValueError(f"{where}: bits must be an int from 1 to 32. Received: {bits!r}.")
