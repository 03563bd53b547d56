"""The direct path of convolution for few-tap layers (``fast/conv_direct.py``, ``direct_numba``).

Naive loops, central differences and PyTorch, as for the other paths; the reference
``deltanet.ops.conv`` is the reference for float32 and for the inf / NaN fallback.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deltanet.fast import plan
from deltanet.fast.conv import conv_backward, conv_forward
from deltanet.ops import conv as ref
from deltanet.ops.conv import ConvPath
from deltanet.ops.window import as_tuple, resolve_padding
from tests.ops.test_conv import assert_close, make, naive_conv, torch_conv
from tests.utils import check_grads, torch_or_skip

# x shape, w shape, padding, dilation, bias: taps (C_in * kernel cells) from 1 to 27, filter
# counts odd and even (the forward pairs filters), tap counts not multiples of 3 or 4
CASES = [
    pytest.param((3, 2, 11), (5, 2, 3), 1, 2, True, id="1d-p1-d2"),
    pytest.param((2, 1, 12, 12), (6, 1, 5, 5), 2, 1, True, id="2d-lenet"),
    pytest.param((2, 3, 7, 8), (5, 3, 3, 3), "same", (1, 2), False, id="2d-27taps-same-nobias"),
    pytest.param((1, 2, 6, 9), (3, 2, 2, 3), ((1, 0), (2, 1)), 1, True, id="2d-asym"),
    pytest.param((2, 1, 5, 5), (1, 1, 1, 1), 0, 1, True, id="2d-1tap-1filter"),
    pytest.param((2, 1, 5, 6, 8), (4, 1, 3, 3, 2), 1, 1, True, id="3d-p1"),
    pytest.param((1, 2, 7, 5, 10), (1, 2, 2, 2, 2), (1, 0, 1), (2, 1, 2), True, id="3d-d212"),
]  # fmt: skip


@pytest.fixture(autouse=True)
def direct_on(numba_on):
    """The direct loops are numba kernels: every test here runs them."""


def _pads(x, w, padding, dilation):
    nd = w.ndim - 2
    return resolve_padding(padding, x.shape[2:], w.shape[2:], (1,) * nd, as_tuple(dilation, nd))


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, bias", CASES)
def test_direct_path_matches_naive_loops(x_shape, w_shape, padding, dilation, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    y, cache = conv_forward(x, w, b, 1, padding, dilation)
    assert cache.path is ConvPath.DIRECT, "the case must take the direct path"
    dy = np.random.default_rng(1).standard_normal(y.shape)
    d = as_tuple(dilation, w.ndim - 2)
    ref_y, ref_dx, ref_dw, ref_db = naive_conv(
        x, w, b, (1,) * (w.ndim - 2), _pads(x, w, padding, dilation), d, 1, dy
    )
    assert_close(y, ref_y, 1e-12, "y")
    none, dw, db = conv_backward(dy, cache, input_grad=False)  # the direct weight gradient
    assert none is None
    assert_close(dw, ref_dw, 1e-12, "dw")
    if bias:
        assert_close(db, ref_db, 1e-12, "db")
    else:
        assert db is None
    dx, dw2, _ = conv_backward(dy, cache)  # δx: the chunked steps from the cached input
    assert_close(dx, ref_dx, 1e-12, "dx")
    assert_close(dw2, ref_dw, 1e-12, "dw (chunked)")


def test_many_taps_on_a_long_frame_match_naive_loops(monkeypatch):
    """LeNet's second layer (150 taps, 16 filters) as it runs direct at batch 256."""
    monkeypatch.setattr(plan, "THRESHOLDS", dataclasses.replace(plan.THRESHOLDS, chunked_from=0))
    x, w, b = make((1, 6, 14, 14), (16, 6, 5, 5), 16)
    y, cache = conv_forward(x, w, b)
    assert cache.path is ConvPath.DIRECT
    dy = np.random.default_rng(1).standard_normal(y.shape)
    ref = naive_conv(x, w, b, (1, 1), ((0, 0), (0, 0)), (1, 1), 1, dy)
    for name, a, e in zip(("y", "dx", "dw", "db"), (y, *conv_backward(dy, cache)), ref):
        assert_close(a, e, 1e-12, name)
    _, dw, db = conv_backward(dy, cache, input_grad=False)
    assert_close(dw, ref[2], 1e-12, "dw (direct)")


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, bias", CASES)
def test_direct_weight_gradient_gradcheck(x_shape, w_shape, padding, dilation, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    inputs = [w] + ([b] if bias else [])

    def forward(r):
        y, cache = conv_forward(x, w, b, 1, padding, dilation)
        if r is None:
            return y, None
        _, dw, db = conv_backward(r, cache, input_grad=False)
        return y, [dw] + ([db] if bias else [])

    check_grads(forward, inputs)


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, bias", CASES)
def test_direct_float32_matches_the_reference(x_shape, w_shape, padding, dilation, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None, np.float32)
    y, cache = conv_forward(x, w, b, 1, padding, dilation)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    got = (y, *conv_backward(dy, cache, input_grad=False)[1:])
    y2, cache2 = ref.conv_forward(x, w, b, 1, padding, dilation)
    assert cache.path is ConvPath.DIRECT
    want = (y2, *ref.conv_backward(dy, cache2, input_grad=False)[1:])
    for name, a, e in zip(("y", "dw", "db"), got, want):
        if e is not None:
            assert a.dtype == np.float32, name
            assert_close(a, e, 2e-5, name)


@pytest.mark.parametrize(
    "dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("x_shape, w_shape, padding, dilation, bias", CASES)
def test_direct_matches_torch(x_shape, w_shape, padding, dilation, bias, dtype, tol):
    torch = torch_or_skip()
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None, dtype)
    y, cache = conv_forward(x, w, b, 1, padding, dilation)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    nd = w.ndim - 2
    ref = torch_conv(
        torch, x, w, b, dy, (1,) * nd, _pads(x, w, padding, dilation), as_tuple(dilation, nd), 1
    )
    got = (y, *conv_backward(dy, cache, input_grad=False))
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        if name != "dx" and e is not None:
            assert a.dtype == dtype, name
            assert_close(a, e, tol, name)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_inf_or_nan_input_gives_the_exact_weight_gradient(bad):
    """The frame's extra cells would multiply 0 by an inf: such inputs take the chunked steps.

    The inf sits in the last column, which only the rightmost kernel column reads: the other
    taps' gradients stay finite, as PyTorch has them.
    """
    x, w, b = make((1, 1, 6, 6), (2, 1, 3, 3), 2)
    x[0, 0, 1, 5] = bad
    y, cache = conv_forward(x, w, b)
    assert cache.path is ConvPath.DIRECT
    dy = np.random.default_rng(2).standard_normal(y.shape)
    _, dw, db = conv_backward(dy, cache, input_grad=False)
    _, dw_ref, db_ref = ref.conv_backward(dy, ref.conv_forward(x, w, b)[1], input_grad=False)
    np.testing.assert_array_equal(dw, dw_ref)
    np.testing.assert_array_equal(db, db_ref)
    assert np.isfinite(dw[:, :, :, :2]).all() and not np.isfinite(dw[:, :, :, 2]).all()
