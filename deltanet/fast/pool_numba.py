"""Max-pooling kernels (numba), which ``fast/pool.py`` runs when ``enabled()``.

NumPy needs one pass per kernel offset to find the maximum and two more to find which offset
held it; these loops read each window once, keep the running maximum and its offset as
PyTorch's scan does (``if v > max or isnan(v)``: the first maximum, the last NaN) and, in the
backward pass, add each ``δ`` to the cell that offset names. Every geometry is given as 3-D:
1-D and 2-D pooling add leading axes of size 1. ``ops/pool.py`` is the reference that the
tests compare these kernels with.

The loops are serial on purpose: numba's OpenMP threads spin after each parallel loop and, on a
2-core machine, slow down the BLAS calls that follow more than the parallel loop gains.
"""

from __future__ import annotations

import functools

import numpy as np

from deltanet.fast import njit


@njit
def max_pool3d_forward(xp, first, kernel, stride, dilation, y, arg, low):  # pragma: no cover
    """``xp (M, D, H, W)`` padded with -inf -> ``y (M, *out)``, ``arg (M, *out)`` flat offsets.

    ``low`` is -inf in ``xp``'s dtype (a float64 -inf would turn the float32 loop into float64).
    The kernel offsets are the outer loops and one output row the inner one, so the compare and
    select run branch-free over a row (random data makes a per-window branch mispredict half
    the time). The NaN test stays out of that loop: a row that holds a NaN is scanned again,
    window by window, for the last NaN, as PyTorch picks it.
    """
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    m_, od_, oh_, ow_ = y.shape
    for m in range(m_):
        for od in range(od_):
            for oh in range(oh_):
                best = y[m, od, oh]
                at = arg[m, od, oh]
                for ow in range(ow_):
                    best[ow] = low
                    at[ow] = first[od, oh, ow]
                nan = False
                flat = 0
                for a in range(kd):
                    for b in range(kh):
                        row = xp[m, od * sd + a * dd, oh * sh + b * dh]
                        for c in range(kw):
                            for ow in range(ow_):
                                v = row[ow * sw + c * dw]
                                nan |= v != v
                                take = v > best[ow]
                                best[ow] = v if take else best[ow]
                                at[ow] = flat if take else at[ow]
                            flat += 1
                if nan:
                    for ow in range(ow_):
                        flat = 0
                        for a in range(kd):
                            for b in range(kh):
                                for c in range(kw):
                                    v = xp[m, od * sd + a * dd, oh * sh + b * dh, ow * sw + c * dw]
                                    if v != v:
                                        best[ow], at[ow] = v, flat
                                    flat += 1


@njit
def _cell_offsets(kernel, dilation, h_, w_):  # pragma: no cover - numba
    """Flat displacement of each window cell (in flat kernel order) from the window's corner."""
    kd, kh, kw = kernel
    dd, dh, dw = dilation
    shift = np.empty(kd * kh * kw, dtype=np.uint64)
    for a in range(kd):
        for b in range(kh):
            for c in range(kw):
                shift[(a * kh + b) * kw + c] = (a * dd * h_ + b * dh) * w_ + c * dw
    return shift


@njit
def max_pool3d_backward(dy, arg, kernel, stride, dilation, dxp):  # pragma: no cover - numba
    """``δxp[cell of arg[o]] += δy[o]`` for each output ``o``; ``dxp (M, D, H, W)`` zeroed.

    A table turns each flat kernel offset into its displacement in the padded plane, so the
    loop does no integer division.
    """
    sd, sh, sw = stride
    m_, od_, oh_, ow_ = dy.shape
    _, d_, h_, w_ = dxp.shape
    shift = _cell_offsets(kernel, dilation, h_, w_)
    src, at, dst = dy.ravel(), arg.ravel(), dxp.ravel()
    q = 0
    for m in range(m_):
        for od in range(od_):
            for oh in range(oh_):
                row = ((m * d_ + od * sd) * h_ + oh * sh) * w_
                for ow in range(ow_):
                    dst[np.uint64(row + ow * sw) + shift[at[q]]] += src[q]
                    q += 1


@njit
def _pick(best, v):  # pragma: no cover - numba
    """PyTorch's scan step: a larger value or a NaN replaces the running maximum."""
    return v if v > best or v != v else best


@njit
def max_pool3d_values(xp, kernel, stride, dilation, y, low):  # pragma: no cover - numba
    """``y`` alone, no argmax (inference): the same values as the scan with the argmax.

    A larger value or a NaN replaces the running maximum, so ``y`` is the first maximum or the
    last NaN, bit for bit what the forward kernels that keep the argmax write. Four window
    cells per step, to overlap their loads.
    """
    u = np.uint64
    sd, sh, sw = u(stride[0]), u(stride[1]), u(stride[2])
    m_, od_, oh_, ow_ = y.shape
    _, d_, h_, w_ = xp.shape
    d_, h_, w_ = u(d_), u(h_), u(w_)
    shift = _cell_offsets(kernel, dilation, h_, w_)
    cells = u(shift.shape[0])
    src, dst = xp.ravel(), y.ravel()
    q = u(0)
    for m in range(u(m_)):
        for od in range(u(od_)):
            for oh in range(u(oh_)):
                row = ((m * d_ + od * sd) * h_ + oh * sh) * w_
                for ow in range(u(ow_)):
                    corner = row + ow * sw
                    best = low
                    c = u(0)
                    while c + u(4) <= cells:
                        v0, v1 = src[corner + shift[c]], src[corner + shift[c + u(1)]]
                        v2, v3 = src[corner + shift[c + u(2)]], src[corner + shift[c + u(3)]]
                        best = _pick(_pick(_pick(_pick(best, v0), v1), v2), v3)
                        c += u(4)
                    while c < cells:
                        best = _pick(best, src[corner + shift[c]])
                        c += u(1)
                    dst[q] = best
                    q += u(1)


@functools.cache
def max_pool_forward_for(kernel: tuple[int, int, int]):
    """``max_pool3d_forward`` compiled for this one window shape, which LLVM then unrolls.

    A closure cannot go to numba's disk cache, so each costs a compile per process: the plan
    (``plan.unrolled_max_pool``) says which windows get one.
    """
    kd_, kh_, kw_ = kernel

    @njit(cache=False)
    def forward(xp, first, kernel, stride, dilation, y, arg, low):  # pragma: no cover - numba
        # flat, unsigned indices: no wrap-around test for negative indices on every read
        u = np.uint64
        zero = np.zeros(1, y.dtype)[0]
        sd, sh, sw = u(stride[0]), u(stride[1]), u(stride[2])
        m_, od_, oh_, ow_ = y.shape
        _, d_, h_, w_ = xp.shape
        d_, h_, w_ = u(d_), u(h_), u(w_)
        shift = _cell_offsets(kernel, dilation, h_, w_)
        cells = kd_ * kh_ * kw_
        src, first_, best_, arg_ = xp.ravel(), first.ravel(), y.ravel(), arg.ravel()
        q = u(0)
        for m in range(m_):
            plane = u(m) * d_
            for od in range(od_):
                for oh in range(oh_):
                    f = u((od * oh_ + oh) * ow_)
                    row = ((plane + u(od) * sd) * h_ + u(oh) * sh) * w_
                    for ow in range(ow_):
                        corner = row + u(ow) * sw
                        best, at, total = low, first_[f + u(ow)], zero
                        for cell in range(cells):
                            v = src[corner + shift[cell]]
                            total += v  # NaN iff a NaN (or inf - inf) is in the window
                            if v > best:
                                best, at = v, cell
                        if total != total:  # rare: rescan for the last NaN, as PyTorch
                            for cell in range(cells):
                                v = src[corner + shift[cell]]
                                if v != v:
                                    best, at = v, cell
                        best_[q] = best
                        arg_[q] = at
                        q += u(1)

    return forward
