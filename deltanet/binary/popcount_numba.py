"""The numba kernels of ``popcount.py``; imported only when ``deltanet.fast.enabled()``.

Importing this module imports numba (and compiles or loads the kernels from its cache), which
``import deltanet`` must not pay for.
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import njit, prange


@njit(parallel=True)
def pack_channels(x, out):  # pragma: no cover - compiled
    b, c, p = x.shape
    for i in prange(b):
        for ch in range(c):  # reads x in order: one channel plane after the other
            word, bit = ch // 64, np.uint64(1) << np.uint64(ch % 64)
            for j in range(p):
                if x[i, ch, j] >= 0:
                    out[i, j, word] |= bit


@njit(inline="always")
def _popcount64(v):  # pragma: no cover - compiled
    # SWAR popcount; LLVM turns it into the POPCNT instruction where the CPU has one.
    v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
    v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2)) & np.uint64(0x3333333333333333))
    v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (v * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(parallel=True)
def xor_popcount(a, w, out):  # pragma: no cover - compiled
    g, m, nw = a.shape
    o = w.shape[1]
    for t in prange(g * m):  # one (group, row) per iteration: parallel over rows
        i, r = t // m, t % m
        for j in range(o):
            s = np.uint64(0)
            for k in range(nw):
                s += _popcount64(a[i, r, k] ^ w[i, j, k])
            out[i, r, j] = np.int32(s)
