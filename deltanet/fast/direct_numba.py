"""Direct convolution over "frames" as numba loops, for layers with few taps (``conv_direct``).

Each sample's padded input is one flat row ``xf[n]`` (its channels one after another). A tap
``t = (c, a, b, e)`` of the kernel reads the input at a fixed displacement ``offs[t]`` from the
output position, so an output map is a sum of shifted copies of the input row:

    frame[q] = b + Σ_t w[t] xf[n, offs[t] + q],       q = (i*PH + j)*PW + m  for output (i, j, m)

where ``PH, PW`` are the padded input's height and width. ``q`` runs over one contiguous range
(the "frame", of ``(OD-1)*PH*PW + (OH-1)*PW + OW`` cells): the cells with ``m >= OW`` (or
``j >= OH``) are not outputs (a window that wraps around the row's end) and are dropped when the
frame is written to ``y``. In exchange every inner loop is one long unit-stride loop, which LLVM
vectorises completely, over data that stays in L1: there are no windows to lay out (im2col), and
no GEMM to feed.

The forward loop takes two filters and four taps per pass over the frame: four loads of the
input feed eight multiply-adds, and each accumulator is loaded and stored once per four taps
(one tap at a time, the stores bound the loop). The weight gradient runs nine dot products at a
time, as ``thin_matmul_numba.matmul_nt`` does, between three shifted input rows and three rows
of δy laid out as a frame (zeros where the frame has no output). ``ops/conv.py`` is the
reference the tests compare these kernels with.

Flat indices are unsigned, as in ``im2col_numba``: signed ones cost a wrap-around test per access.
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import njit
from deltanet.fast.thin_matmul_numba import add3x3, dot3x3


@njit
def _sizes(y, ph, pw):  # pragma: no cover - numba
    """``y (N, F, OD, OH, OW)``'s sizes, the padded ``ph, pw`` and the frame's length (its cells
    from the first output to the last, ``conv_direct._frame``), all as unsigned integers."""
    u = np.uint64
    n, f, od, oh, ow = y.shape
    ph, pw = u(ph), u(pw)
    pf = ((u(od) - u(1)) * ph + u(oh) - u(1)) * pw + u(ow)
    return u(n), u(f), u(od), u(oh), u(ow), ph, pw, pf


@njit
def _copy_map(frame, flat, r, od, oh, ow, ph, pw, into_frame):  # pragma: no cover - numba
    """Copy one output map between its frame and ``flat[r:r + OD*OH*OW]``, either way.

    ``into_frame`` False: the frame's output cells to ``flat`` (the forward's ``y``); True: the
    reverse (δy into a frame). The branch is loop-invariant: LLVM hoists it.
    """
    for i in range(od):
        for j in range(oh):
            s = (i * ph + j) * pw
            for m in range(ow):
                if into_frame:
                    frame[s + m] = flat[r + m]
                else:
                    flat[r + m] = frame[s + m]
            r += ow


@njit(fastmath={"contract"})
def forward(xf, w, offs, bias, ph, pw, y):  # pragma: no cover - numba
    """``y[n, f] = bias[f] + Σ_t w[f, t] xf[n, offs[t] + q]`` at each output's frame cell ``q``.

    ``xf (N, S)`` padded samples, ``w (F, T)``, ``offs (T,)`` uint64, ``bias (F,)``, ``ph, pw``
    the padded height and width, ``y (N, F, OD, OH, OW)`` C-contiguous.
    """
    u = np.uint64
    n_, f_, od, oh, ow, ph, pw, pf = _sizes(y, ph, pw)
    t_, s_ = u(offs.shape[0]), u(xf.shape[1])
    acc0, acc1 = np.empty(pf, y.dtype), np.empty(pf, y.dtype)
    xs, ws, ys = xf.ravel(), w.ravel(), y.ravel()
    p_ = od * oh * ow
    for n in range(n_):
        row = n * s_
        for f in range(u(0), f_, u(2)):
            g = min(f + u(1), f_ - u(1))  # an odd last filter pairs with itself
            for q in range(pf):
                acc0[q] = bias[f]
                acc1[q] = bias[g]
            wf, wg = f * t_, g * t_
            t = u(0)
            while t + u(4) <= t_:
                a0, a1, a2, a3 = ws[wf + t], ws[wf + t + u(1)], ws[wf + t + u(2)], ws[wf + t + u(3)]
                c0, c1, c2, c3 = ws[wg + t], ws[wg + t + u(1)], ws[wg + t + u(2)], ws[wg + t + u(3)]
                o0, o1 = row + offs[t], row + offs[t + u(1)]
                o2, o3 = row + offs[t + u(2)], row + offs[t + u(3)]
                for q in range(pf):
                    v0, v1, v2, v3 = xs[o0 + q], xs[o1 + q], xs[o2 + q], xs[o3 + q]
                    acc0[q] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
                    acc1[q] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3
                t += u(4)
            while t < t_:  # the last taps, one at a time
                a0, c0, o0 = ws[wf + t], ws[wg + t], row + offs[t]
                for q in range(pf):
                    v0 = xs[o0 + q]
                    acc0[q] += a0 * v0
                    acc1[q] += c0 * v0
                t += u(1)
            _copy_map(acc0, ys, (n * f_ + f) * p_, od, oh, ow, ph, pw, False)
            _copy_map(acc1, ys, (n * f_ + g) * p_, od, oh, ow, ph, pw, False)


@njit
def weight_grad(xf, dy, offs, ph, pw, out):  # pragma: no cover - numba
    """``out[t, f] += Σ_n Σ_q xf[n, offs[t] + q] δy_frame[n, f, q]``: ``(∂L/∂W)ᵀ``, taps x filters.

    ``dy (N, F, OD, OH, OW)`` C-contiguous. Each sample's δy is laid out as a frame in a small
    buffer (zero where the frame has no output, so those cells add nothing), then three taps
    meet three filters at a time (``thin_matmul_numba.dot3x3``).
    """
    u = np.uint64
    n_, f_, od, oh, ow, ph, pw, pf = _sizes(dy, ph, pw)
    t_, s_ = u(offs.shape[0]), u(xf.shape[1])
    frames = np.zeros((f_, pf), dy.dtype)  # the non-output cells stay zero
    zero = np.zeros(1, out.dtype)[0]
    xs, ds, fs = xf.ravel(), dy.ravel(), frames.ravel()
    p_ = od * oh * ow
    for n in range(n_):
        for f in range(f_):  # δy[n, f] into its frame
            _copy_map(frames[f], ds, (n * f_ + f) * p_, od, oh, ow, ph, pw, True)
        row = n * s_
        for t in range(u(0), t_, u(3)):
            t1, t2 = min(t + u(1), t_ - u(1)), min(t + u(2), t_ - u(1))
            o0, o1, o2 = row + offs[t], row + offs[t1], row + offs[t2]
            for f in range(u(0), f_, u(3)):
                f1, f2 = min(f + u(1), f_ - u(1)), min(f + u(2), f_ - u(1))
                sums = dot3x3(xs, o0, o1, o2, fs, f * pf, f1 * pf, f2 * pf, pf, zero)
                add3x3(out, t, f, sums)
