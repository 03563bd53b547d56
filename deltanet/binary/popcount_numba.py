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
    xw, wt, kernel, stride, dilation, pad_lo, out_size, c_g, scale, shift, affine, out
):
    # xw (N, G, D, H, W, W_c): the input words, unpadded; wt (G, K_pos, W_c, O_g): the weight
    # words, output channels innermost; out (N, C_out, P): the counts, or with ``affine`` the
    # layer's output ``count * scale[o] + shift[o]`` in out's dtype (two roundings, as NumPy).
    # A padded tap is skipped: it adds 0 to the dot product and nothing to the valid taps, so
    # count = C_g * valid - 2 * (differing bits over the valid taps). One output row (n, g, z, y)
    # per iteration; its counts accumulate in acc (OW, O_g), for each input word one pass over
    # O_g contiguous weight words, four words at a time so that acc is loaded and stored once
    # per four.
    n, g, d_in, h_in, w_in, wc = xw.shape
    og = wt.shape[3]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    ld, lh, lw = pad_lo
    od, oh, ow = out_size
    rows = od * oh
    w4 = wc - wc % 4
    for t in prange(n * g * rows):
        i = t // (g * rows)
        gi = (t // rows) % g
        z = (t % rows) // oh
        y = t % oh
        acc = np.zeros((ow, og), np.uint64)
        valid = np.zeros(ow, np.int64)
        for a in range(kd):
            zz = z * sd + a * dd - ld
            if zz < 0 or zz >= d_in:
                continue
            for b in range(kh):
                yy = y * sh + b * dh - lh
                if yy < 0 or yy >= h_in:
                    continue
                for c in range(kw):
                    kp = (a * kh + b) * kw + c
                    for x in range(ow):
                        xx = x * sw + c * dw - lw
                        if xx < 0 or xx >= w_in:
                            continue
                        valid[x] += 1
                        for k in range(0, w4, 4):
                            v0 = xw[i, gi, zz, yy, xx, k]
                            v1 = xw[i, gi, zz, yy, xx, k + 1]
                            v2 = xw[i, gi, zz, yy, xx, k + 2]
                            v3 = xw[i, gi, zz, yy, xx, k + 3]
                            for o in range(og):
                                acc[x, o] += (
                                    _popcount64(v0 ^ wt[gi, kp, k, o])
                                    + _popcount64(v1 ^ wt[gi, kp, k + 1, o])
                                    + _popcount64(v2 ^ wt[gi, kp, k + 2, o])
                                    + _popcount64(v3 ^ wt[gi, kp, k + 3, o])
                                )
                        for k in range(w4, wc):
                            v0 = xw[i, gi, zz, yy, xx, k]
                            for o in range(og):
                                acc[x, o] += _popcount64(v0 ^ wt[gi, kp, k, o])
        p0 = (z * oh + y) * ow
        for o in range(og):
            oc = gi * og + o
            for x in range(ow):
                out[i, oc, p0 + x] = c_g * valid[x] - 2 * np.int64(acc[x, o])
                if affine:  # the count, exact in out's dtype, then two roundings as NumPy's
                    out[i, oc, p0 + x] = out[i, oc, p0 + x] * scale[oc] + shift[oc]
