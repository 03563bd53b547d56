"""Packed ±1 dense and convolution products: exact integer dot products from XOR and popcount.

``dense_counts(x, w_words, k)[n, o] = sign(x_n) · sign(W_o)`` and ``conv_counts`` the same for
every window of a convolution, where ``sign(0) = +1``, computed as ``K - 2 popcount(a XOR w)``.

Convolution packs the incoming activations once, along the channels of each spatial position
(``(N, G, *spatial, W_c)`` words), then gathers the windows of words; the weights are laid out
the same way, ``(C_out, K_pos, W_c)``. Zero padding is neither +1 nor -1: a padded position's
words are 0 (all -1), so its XOR counts the +1 weights of that kernel position,
``pc_w[o, k]``; these are subtracted again and only valid positions count towards K:

    dot[p, o] = C_g * n_valid[p] - 2 * (d[p, o] - sum_{k padded at p} pc_w[o, k])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet.binary.kernels import (
    pack_bits,
    pack_channel_signs,
    pack_signs,
    unpack_bits,
    xor_popcount,
)
from deltanet.ops.window import output_size, resolve_padding, sliding_windows


def dense_counts(x: np.ndarray, w_words: np.ndarray, k: int) -> np.ndarray:
    """x: (N, K) float, w_words: (O, ceil(K/64)) -> (N, O) int32 dot products of signs."""
    d = xor_popcount(pack_signs(x), w_words)
    return np.int32(k) - 2 * d


def pack_conv_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """Weight (C_out, C_g, *k) -> storage words (C_out, ceil(K_pos * C_g / 64)), (k, c) order."""
    bits = np.moveaxis(w >= 0, 1, -1)  # (C_out, *k, C_g): channels innermost, as the input
    return pack_bits(bits.reshape(w.shape[0], -1))


def conv_weight_words(stored: np.ndarray, c_g: int, k_pos: int) -> np.ndarray:
    """Storage words -> compute layout (C_out, K_pos, ceil(C_g/64)): one word run per position."""
    bits = unpack_bits(stored, k_pos * c_g).reshape(stored.shape[0], k_pos, c_g)
    return pack_bits(bits)


def conv_geometry(
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: int | str | Sequence,
    dilation: Sequence[int],
) -> tuple[tuple, tuple[int, ...]]:
    """``(pads, out)``: the ``(lo, hi)`` pads and the output size, as ``conv_forward``."""
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    out = tuple(
        output_size(i, k, s, lo, hi, d)
        for i, k, s, (lo, hi), d in zip(spatial, kernel, stride, pads, dilation)
    )
    if min(out) < 1:
        raise ValueError(
            f"the kernel is larger than the padded input. Received: input size {tuple(spatial)}, "
            f"padding {pads}, kernel_size {tuple(kernel)}, dilation {tuple(dilation)}."
        )
    return pads, out


def conv_counts(
    x: np.ndarray,
    w_words: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: int | str | Sequence,
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """x: (N, C, *in) float, w_words: (C_out, K_pos, W_c) -> (N, C_out, *out) int32 counts."""
    n, c, *spatial = x.shape
    nd, c_g, c_out = len(kernel), c // groups, w_words.shape[0]
    pads, out = conv_geometry(spatial, kernel, stride, padding, dilation)
    k_pos, p = math.prod(kernel), math.prod(out)
    # (N, G, *in, W_c): packed once, before the windows repeat each position K_pos times
    words = pack_channel_signs(x.reshape(n * groups, c_g, -1))
    w_c = words.shape[-1]
    words = words.reshape(n, groups, *spatial, w_c)
    words = np.pad(words, ((0, 0), (0, 0), *pads, (0, 0)))  # zero words: fixed below
    win = sliding_windows(np.moveaxis(words, -1, 2), kernel, stride, dilation, out)
    # (N, G, W_c, *out, *k) -> (G, N, *out, *k, W_c): one row of K_pos * W_c words per window
    axes = (1, 0, *range(3, 3 + 2 * nd), 2)
    rows = win.transpose(axes).reshape(groups, n * p, k_pos * w_c)
    d = xor_popcount(rows, w_words.reshape(groups, c_out // groups, k_pos * w_c))
    valid, corr = _padding_terms(spatial, pads, kernel, stride, dilation, out, w_words)
    corr = corr.reshape(p, groups, c_out // groups).transpose(1, 0, 2)  # (G, P, O_g)
    d = d.reshape(groups, n, p, -1) - corr[:, None]
    counts = (c_g * valid)[None, None, :, None] - 2 * d  # (G, N, P, O_g)
    return np.ascontiguousarray(counts.transpose(1, 0, 3, 2)).reshape(n, c_out, *out)


def _padding_terms(spatial, pads, kernel, stride, dilation, out, w_words):
    """``n_valid (P,)`` valid taps per output position and ``corr (P, C_out)``, the +1 weights
    that padded taps added to the XOR counts."""
    ones = np.pad(np.ones(spatial, np.int32), pads)
    taps = sliding_windows(ones, kernel, stride, dilation, out).reshape(math.prod(out), -1)
    valid = taps.sum(1, dtype=np.int32)
    if not any(lo or hi for lo, hi in pads):
        return valid, np.zeros((taps.shape[0], w_words.shape[0]), np.int32)
    pc_w = np.bitwise_count(w_words).sum(-1, dtype=np.int32)  # (C_out, K_pos)
    return valid, (1 - taps) @ pc_w.T
