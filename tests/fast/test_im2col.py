"""``deltanet.fast.im2col`` against the reference ``deltanet.ops.im2col``: the same copies and the
same scatter-adds, in the same order, so the same bits."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.fast import im2col as fast
from deltanet.ops import im2col as ref
from deltanet.ops.window import pad
from tests.ops.test_im2col import CASES, window


@pytest.mark.parametrize("shape, kernel, stride, dilation, pads", CASES)
def test_fast_im2col_and_col2im_equal_the_reference(engine, shape, kernel, stride, dilation, pads):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    win = window(shape, kernel, stride, dilation, pads)
    cols = fast.im2col(x, win)
    np.testing.assert_array_equal(cols, ref.im2col(x, win))
    c = rng.standard_normal(cols.shape).astype(np.float32)
    got, want = np.zeros(pad(x, pads).shape, np.float32), np.zeros(pad(x, pads).shape, np.float32)
    fast.col2im(c, win, got)
    ref.col2im(c, win, want)
    np.testing.assert_array_equal(got, want)


def test_fast_im2col_writes_into_a_given_buffer(engine):
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    win = window(x.shape, (2, 3), (1, 1), (1, 1), ((1, 0), (0, 1)))
    buf = np.full(1000, np.nan, np.float32)
    cols = fast.im2col(x, win, buf)
    assert np.shares_memory(cols, buf)
    np.testing.assert_array_equal(cols, ref.im2col(x, win))


def test_compiled_col2im_needs_a_contiguous_target(numba_on):
    win = window((1, 1, 4, 4), (2, 2), (1, 1), (1, 1), ((0, 0), (0, 0)))
    with pytest.raises(ValueError, match="C-contiguous"):
        fast.col2im(np.ones((4, 9)), win, np.zeros((1, 1, 4, 8))[..., ::2])
