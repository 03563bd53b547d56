"""The numba kernels of ``popcount.py`` and ``packed.py``; imported only when
``deltanet.fast.enabled()``.

Importing this module imports numba (and compiles or loads the kernels from its cache), which
``import deltanet`` must not pay for. numba compiles for the host CPU, so the loops are written
for LLVM's vectoriser: the innermost loops run over contiguous uint64 words (positions when
packing, output channels when counting), with no branches, so that the SWAR popcount becomes
``vpopcntq`` on a CPU with AVX-512 VPOPCNTDQ (``popcnt`` per word elsewhere).
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import njit, prange


@njit(parallel=True)
def pack_channels(x, out):  # pragma: no cover - compiled
    # x (B, C, P) float -> out (B, P, ceil(C/64)) words; one (batch, word) per iteration, the
    # 64 channels of the word OR-ed into a row of P words by a branchless loop over positions.
    b, c, p = x.shape
    nw = out.shape[2]
    for t in prange(b * nw):
        i, wd = t // nw, t % nw
        acc = np.zeros(p, np.uint64)
        for ch in range(wd * 64, min(c, wd * 64 + 64)):
            shift = np.uint64(ch - wd * 64)
            for j in range(p):
                acc[j] |= np.uint64(x[i, ch, j] >= 0) << shift
        for j in range(p):
            out[i, j, wd] = acc[j]


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


@njit(parallel=True)
def conv_counts(  # pragma: no cover - compiled
    xp, wt, kernel, stride, dilation, out_size, valid, corr, c_g, out
):
    # xp (N, G, Dp, Hp, Wp, W_c): the padded input words; wt (G, K_pos, W_c, O_g): the weight
    # words with the output channels innermost; valid (P,), corr (P, C_out): see packed.py;
    # out (N, C_out, P) int32 counts. One output row (n, g, z, y) per iteration; its counts
    # accumulate in acc (OW, O_g): for each input word, one pass over O_g contiguous weight
    # words, four input words at a time so that acc is loaded and stored once per four.
    n, g = xp.shape[0], xp.shape[1]
    wc = xp.shape[5]
    og = wt.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    od, oh, ow = out_size
    rows = od * oh
    w4 = wc - wc % 4
    for t in prange(n * g * rows):
        i = t // (g * rows)
        gi = (t // rows) % g
        z = (t % rows) // oh
        y = t % oh
        acc = np.zeros((ow, og), np.uint64)
        for a in range(kd):
            for b in range(kh):
                zz, yy = z * sd + a * dd, y * sh + b * dh
                for c in range(kw):
                    kp = (a * kh + b) * kw + c
                    for x in range(ow):
                        xx = x * sw + c * dw
                        for k in range(0, w4, 4):
                            v0 = xp[i, gi, zz, yy, xx, k]
                            v1 = xp[i, gi, zz, yy, xx, k + 1]
                            v2 = xp[i, gi, zz, yy, xx, k + 2]
                            v3 = xp[i, gi, zz, yy, xx, k + 3]
                            for o in range(og):
                                acc[x, o] += (
                                    _popcount64(v0 ^ wt[gi, kp, k, o])
                                    + _popcount64(v1 ^ wt[gi, kp, k + 1, o])
                                    + _popcount64(v2 ^ wt[gi, kp, k + 2, o])
                                    + _popcount64(v3 ^ wt[gi, kp, k + 3, o])
                                )
                        for k in range(w4, wc):
                            v0 = xp[i, gi, zz, yy, xx, k]
                            for o in range(og):
                                acc[x, o] += _popcount64(v0 ^ wt[gi, kp, k, o])
        p0 = (z * oh + y) * ow
        for o in range(og):
            oc = gi * og + o
            for x in range(ow):
                p = p0 + x
                d = np.int64(acc[x, o]) - corr[p, oc]
                out[i, oc, p] = np.int32(c_g * valid[p] - 2 * d)
