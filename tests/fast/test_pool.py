"""``deltanet.fast.pool``'s max-pooling kernels against the reference ``deltanet.ops.pool``.

Both must pick the same argmax (the first maximum in window order, the last NaN, the first real
cell of an all -inf window), so the outputs and the cached offsets must be identical; the
gradients too, up to the order of additions where windows overlap. The reference itself is
checked against loops and PyTorch in ``tests/ops/test_pool.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.fast import pool as fast
from deltanet.ops import pool as ref

# x shape, kernel, stride, padding, dilation, ceil_mode
CASES = [
    pytest.param((2, 3, 12), 3, 2, 1, 1, False, id="1d-k3-s2-p1"),
    pytest.param((1, 2, 11), 2, None, 0, 2, True, id="1d-d2-ceil"),
    pytest.param((2, 3, 8, 8), 2, None, 0, 1, False, id="2d-k2"),
    pytest.param((2, 2, 9, 7), 3, (2, 1), 1, 1, True, id="2d-k3-s21-p1-ceil"),
    pytest.param((1, 2, 9, 9), (3, 2), 2, (1, 1), (2, 3), False, id="2d-dilated"),
    pytest.param((1, 2, 6, 7, 5), 2, None, 0, 1, False, id="3d-k2"),
    pytest.param((2, 1, 7, 6, 8), 3, 2, 1, (1, 2, 1), True, id="3d-s2-p1-d121-ceil"),
]  # fmt: skip


def _input(shape, dtype, seed=0):
    """Small integers (many ties), a few NaNs and -infs, and one all -inf plane."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, max(1, flat.size // 6), replace=False)] = np.nan
    flat[rng.choice(flat.size, max(1, flat.size // 25), replace=False)] = -np.inf
    x[0, 0] = -np.inf
    return x


def _run(ops, x, hyper):
    y, cache = ops.max_pool_forward(x, *hyper)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    (dx,) = ops.max_pool_backward(dy, cache)
    return y, cache.argmax, dx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", CASES)
def test_fast_max_pool_equals_the_reference(
    numba_on, dtype, shape, kernel, stride, padding, dilation, ceil_mode
):
    x = _input(shape, dtype)
    hyper = (kernel, stride, padding, dilation, ceil_mode)
    y0, arg0, dx0 = _run(ref, x, hyper)
    y1, arg1, dx1 = _run(fast, x, hyper)
    assert y1.dtype == dx1.dtype == dtype and arg1.dtype == arg0.dtype
    np.testing.assert_array_equal(y1, y0)  # NaN where NaN, bit for bit elsewhere
    np.testing.assert_array_equal(arg1, arg0)
    # overlapping windows: the kernel adds in output order, NumPy offset by offset
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(dx1, dx0, rtol=tol, atol=tol)
    assert np.isnan(y1).any() and np.isneginf(y1).any(), "the input must exercise both"


def test_compiled_max_pool_on_non_contiguous_input(numba_on):
    x = np.random.default_rng(2).standard_normal((2, 3, 10, 12)).astype(np.float32)
    view = x[:, ::-1, :, ::2]  # neither C- nor F-contiguous
    y0, arg0, dx0 = _run(ref, view, (2, None, 0, 1, False))
    y1, arg1, dx1 = _run(fast, view, (2, None, 0, 1, False))
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", CASES[::2])
def test_fast_max_pool_without_argmax_gives_the_same_bits(
    engine, shape, kernel, stride, padding, dilation, ceil_mode
):
    """Inference skips the argmax: the same y bit for bit, and a backward pass after it finds
    the argmax from the cached input; either op's backward takes the other's cache."""
    x = _input(shape, np.float32, seed=3)
    hyper = (kernel, stride, padding, dilation, ceil_mode)
    y, cache = ref.max_pool_forward(x, *hyper)
    y2, lazy = fast.max_pool_forward(x, *hyper, argmax=False)
    assert lazy.argmax is None and lazy.x is x and cache.x is None
    np.testing.assert_array_equal(y2.view(np.uint32), y.view(np.uint32))
    dy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    (dx,) = ref.max_pool_backward(dy, cache)
    np.testing.assert_allclose(fast.max_pool_backward(dy, lazy)[0], dx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ref.max_pool_backward(dy, lazy)[0], dx, rtol=1e-6, atol=1e-6)
    found = fast.max_pool_argmax(lazy)
    assert found.x is None and fast.max_pool_argmax(found) is found
    np.testing.assert_array_equal(found.argmax, cache.argmax)


def test_mean_and_global_pooling_are_the_reference():
    for name in fast.__all__:
        if not name.startswith("max_pool"):  # mean and global pooling: one pass each already
            assert getattr(fast, name) is getattr(ref, name), name
