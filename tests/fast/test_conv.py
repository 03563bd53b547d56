"""``deltanet.fast.conv`` against the reference ``deltanet.ops.conv``, on every case of
``tests/ops/test_conv.py`` (which checks the reference against naive loops, central differences
and PyTorch), once with the NumPy paths and once with the numba kernels.

The whole-batch GEMM path copies the same windows and scatters them back in the same order as
the reference, so its ``y`` and ``δx`` are the reference's bit for bit; its weight gradient is
computed transposed (and as dot products when thin), equal up to the order of additions.
"""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.fast import conv as fast
from deltanet.ops import conv as ref
from deltanet.ops.conv import ConvPath
from tests.ops.test_conv import CONV_CASES, TRANSPOSE_CASES, assert_close, make

ARGS = "x_shape, w_shape, stride, padding, dilation, groups, bias"
T_ARGS = "x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias"


def _both(forward, backward, args, dy_seed=1, input_grad=True):
    """``(y, dx, dw, db)`` and the cache of ``forward(*args)`` then ``backward``."""
    y, cache = forward(*args)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(y.dtype)
    return (y, *backward(dy, cache, input_grad)), cache


@pytest.mark.parametrize("input_grad", [True, False], ids=["dx", "no-dx"])
@pytest.mark.parametrize(ARGS, CONV_CASES)
def test_fast_conv_matches_the_reference(
    engine, input_grad, x_shape, w_shape, stride, padding, dilation, groups, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    args = (x, w, b, stride, padding, dilation, groups)
    got, cache = _both(fast.conv_forward, fast.conv_backward, args, input_grad=input_grad)
    want, _ = _both(ref.conv_forward, ref.conv_backward, args, input_grad=input_grad)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, want):
        assert (a is None) == (e is None), name
        if e is not None:
            assert_close(a, e, 1e-12, name)
    if cache.path is ConvPath.GEMM:  # the same copies and scatter-adds as the reference
        np.testing.assert_array_equal(got[0], want[0])
        if input_grad:
            np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize(ARGS, CONV_CASES[::2])
def test_fast_conv_keeps_float32(engine, x_shape, w_shape, stride, padding, dilation, groups, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None, np.float32)
    args = (x, w, b, stride, padding, dilation, groups)
    got, _ = _both(fast.conv_forward, fast.conv_backward, args)
    want, _ = _both(ref.conv_forward, ref.conv_backward, args)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, want):
        if e is not None:
            assert a.dtype == np.float32, name
            assert_close(a, e, 1e-5, name)


@pytest.mark.parametrize(T_ARGS, TRANSPOSE_CASES)
def test_fast_conv_transpose_matches_the_reference(
    engine, x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[1] * groups if bias else None)
    args = (x, w, b, stride, padding, output_padding, dilation, groups)
    got, _ = _both(fast.conv_transpose_forward, fast.conv_transpose_backward, args)
    want, _ = _both(ref.conv_transpose_forward, ref.conv_transpose_backward, args)
    np.testing.assert_array_equal(got[0], want[0])  # the same scatter-adds
    for name, a, e in zip(("dx", "dw", "db"), got[1:], want[1:]):
        assert (a is None) == (e is None), name
        if e is not None:
            assert_close(a, e, 1e-12, name)


def test_caches_pass_between_the_reference_and_the_fast_gemm_path(engine):
    """A GEMM cache is one type: either backward takes the other's."""
    x, w, b = make((2, 4, 7, 6), (6, 2, 3, 3), 6)
    y, ref_cache = ref.conv_forward(x, w, b, 1, 1, 1, 2)
    _, fast_cache = fast.conv_forward(x, w, b, 1, 1, 1, 2)
    assert fast_cache.path is ConvPath.GEMM
    dy = np.random.default_rng(0).standard_normal(y.shape)
    for a, e in zip(fast.conv_backward(dy, ref_cache), ref.conv_backward(dy, fast_cache)):
        assert_close(a, e, 1e-12)
