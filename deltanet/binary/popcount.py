"""Bit packing and XOR-popcount products: the arithmetic of the packed layers (NumPy reference).

A ±1 vector of length K is stored as ``ceil(K / 64)`` uint64 words, bit ``i`` of the vector in
bit ``i % 64`` of word ``i // 64``, 1 for +1 and 0 for -1; the unused high bits of the last word
are 0 in every packed operand, so they never differ. For two such vectors

    a · w = K - 2 * popcount(a XOR w)

because each position where the signs differ adds -1 instead of +1. ``xor_popcount`` returns
the number of differing bits (an exact integer); the NumPy version is the tested reference and
a numba kernel (``popcount_numba``, imported only when ``deltanet.fast.enabled()``)
computes the same counts word by word without the ``(M, O, W)`` XOR temporary that makes the
broadcast version slower than a float matmul.
"""

from __future__ import annotations

import numpy as np

from deltanet import fast


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Boolean ``(..., K)`` -> uint64 words ``(..., ceil(K/64))``, little-endian bit order."""
    k = bits.shape[-1]
    words = -(-k // 64)
    packed = np.packbits(bits, axis=-1, bitorder="little")  # (..., ceil(K/8)) bytes
    pad = words * 8 - packed.shape[-1]
    if pad:
        packed = np.concatenate([packed, np.zeros((*packed.shape[:-1], pad), np.uint8)], -1)
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, k: int) -> np.ndarray:
    """uint64 words ``(..., W)`` -> boolean ``(..., k)``: the inverse of ``pack_bits``."""
    as_bytes = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, count=k, bitorder="little").astype(bool)


def pack_signs(x: np.ndarray) -> np.ndarray:
    """Float ``(..., K)`` -> words of ``sign(x)`` (``x >= 0`` is +1, as ``sign(0) = +1``)."""
    return pack_bits(x >= 0)


def pack_channel_signs(x: np.ndarray) -> np.ndarray:
    """Float ``(B, C, P)`` -> words ``(B, P, ceil(C/64))`` of ``sign(x)`` along the channels.

    ``pack_signs`` of ``x`` with the channel axis moved last; the numba kernel packs without
    the strided boolean copy that ``np.packbits`` needs here.
    """
    if not fast.enabled() or x.dtype not in (np.float32, np.float64):  # the kernel: these two
        return pack_signs(np.moveaxis(x, 1, -1))
    from deltanet.binary import popcount_numba  # imports numba: only when it is wanted

    b, c, p = x.shape
    out = np.zeros((b, p, -(-c // 64)), np.uint64)
    popcount_numba.pack_channels(np.ascontiguousarray(x), out)
    return out


def xor_popcount_numpy(a: np.ndarray, w: np.ndarray, block: int = 64) -> np.ndarray:
    """``d[..., m, o] = popcount(a[..., m, :] XOR w[..., o, :])`` summed over words, int32.

    a: (G, M, W) or (M, W); w: (G, O, W) or (O, W). Rows go ``block`` at a time so the XOR
    temporary stays at ``block * O * W`` words.
    """
    squeeze = a.ndim == 2
    a3, w3 = (a[None], w[None]) if squeeze else (a, w)
    g, m, _ = a3.shape
    out = np.empty((g, m, w3.shape[1]), np.int32)
    for i in range(g):
        for r in range(0, m, block):
            x = np.bitwise_xor(a3[i, r : r + block, None, :], w3[i, None, :, :])
            out[i, r : r + block] = np.bitwise_count(x).sum(-1, dtype=np.int32)
    return out[0] if squeeze else out


def xor_popcount(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``xor_popcount_numpy`` through the numba kernel when ``deltanet.fast.enabled()``."""
    if not fast.enabled():
        return xor_popcount_numpy(a, w)
    from deltanet.binary import popcount_numba

    squeeze = a.ndim == 2
    a3 = np.ascontiguousarray(a[None] if squeeze else a)
    w3 = np.ascontiguousarray(w[None] if squeeze else w)
    out = np.empty((a3.shape[0], a3.shape[1], w3.shape[1]), np.int32)
    popcount_numba.xor_popcount(a3, w3, out)
    return out[0] if squeeze else out
