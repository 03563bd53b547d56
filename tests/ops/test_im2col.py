"""im2col / col2im: the window copies against sliding windows, and col2im as their adjoint."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deltanet.ops.im2col import col2im, im2col
from deltanet.ops.window import Window, output_size, pad, sliding_windows

# x shape, kernel, stride, dilation, pads
CASES = [
    pytest.param((2, 3, 11), (3,), (2,), (1,), ((1, 2),), id="1d"),
    pytest.param((3, 2, 7, 9), (3, 2), (1, 2), (2, 1), ((1, 1), (0, 2)), id="2d"),
    pytest.param((2, 2, 5, 6, 7), (2, 3, 2), (2, 1, 3), (1, 2, 1), ((0, 1), (1, 1), (2, 0)),
                 id="3d"),
]  # fmt: skip


def window(shape, kernel, stride, dilation, pads):
    out = tuple(
        output_size(i, k, s, lo, hi, d)
        for i, k, s, (lo, hi), d in zip(shape[2:], kernel, stride, pads, dilation)
    )
    return Window(kernel, stride, dilation, pads, out)


@pytest.mark.parametrize("shape, kernel, stride, dilation, pads", CASES)
def test_im2col_lays_out_every_window(shape, kernel, stride, dilation, pads):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    win = window(shape, kernel, stride, dilation, pads)
    cols = im2col(x, win)
    view = sliding_windows(pad(x, pads), kernel, stride, dilation, win.out)  # (N, C, *out, *k)
    nd = len(kernel)
    ref = view.transpose(1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd))
    np.testing.assert_array_equal(cols, ref.reshape(cols.shape))
    assert cols.shape == (shape[1] * math.prod(kernel), shape[0] * math.prod(win.out))


@pytest.mark.parametrize("shape, kernel, stride, dilation, pads", CASES)
def test_col2im_is_the_adjoint_of_im2col(shape, kernel, stride, dilation, pads):
    """<im2col(x), c> = <x, col2im(c)>: the scatter-add is exactly the transpose of the copy."""
    rng = np.random.default_rng(1)
    win = window(shape, kernel, stride, dilation, pads)
    x = pad(rng.standard_normal(shape), pads)  # already padded: compare on the padded grid
    cols = im2col(x, win._replace(pads=((0, 0),) * len(kernel)))
    c = rng.standard_normal(cols.shape)
    back = np.zeros(x.shape)
    col2im(c, win, back)
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, back), rel=1e-12)


def test_im2col_writes_into_a_given_buffer():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    buf = np.full(1000, np.nan)
    cols = im2col(x, Window((2, 2), (1, 1), (1, 1), ((0, 0), (0, 0)), (3, 3)), buf)
    assert np.shares_memory(cols, buf) and cols.shape == (4, 18)
    assert not np.isnan(cols).any()
