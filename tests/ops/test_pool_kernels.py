"""The compiled max-pooling kernels against the NumPy reference path, cell for cell.

Both paths must pick the same argmax (the first maximum in window order, the last NaN, the first
real cell of an all -inf window), so the outputs and the cached offsets must be identical; the
gradients too, up to the order of additions where windows overlap. The NumPy path itself is
checked against loops and PyTorch in ``test_pool.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.ops.pool import max_pool_backward, max_pool_forward

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


def _run(monkeypatch, flag, x, hyper):
    monkeypatch.setenv("DELTANET_NUMBA", flag)
    y, cache = max_pool_forward(x, *hyper)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    (dx,) = max_pool_backward(dy, cache)
    return y, cache[0], dx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", CASES)
def test_compiled_max_pool_equals_numpy(
    monkeypatch, dtype, shape, kernel, stride, padding, dilation, ceil_mode
):
    pytest.importorskip("numba")
    x = _input(shape, dtype)
    hyper = (kernel, stride, padding, dilation, ceil_mode)
    y0, arg0, dx0 = _run(monkeypatch, "0", x, hyper)
    y1, arg1, dx1 = _run(monkeypatch, "1", x, hyper)
    assert y1.dtype == dx1.dtype == dtype and arg1.dtype == arg0.dtype
    np.testing.assert_array_equal(y1, y0)  # NaN where NaN, bit for bit elsewhere
    np.testing.assert_array_equal(arg1, arg0)
    # overlapping windows: the kernel adds in output order, NumPy offset by offset
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(dx1, dx0, rtol=tol, atol=tol)
    assert np.isnan(y1).any() and np.isneginf(y1).any(), "the input must exercise both"


def test_compiled_max_pool_on_non_contiguous_input(monkeypatch):
    pytest.importorskip("numba")
    x = np.random.default_rng(2).standard_normal((2, 3, 10, 12)).astype(np.float32)
    view = x[:, ::-1, :, ::2]  # neither C- nor F-contiguous
    y0, arg0, dx0 = _run(monkeypatch, "0", view, (2, None, 0, 1, False))
    y1, arg1, dx1 = _run(monkeypatch, "1", view, (2, None, 0, 1, False))
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
