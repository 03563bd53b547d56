"""Dropout op: mask statistics, scaling, determinism, gradients, dtypes, PyTorch's scale."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deltanet.ops.dropout import dropout_backward, dropout_forward
from tests.utils import check_grads, torch_or_skip


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_statistics_and_scale(p):
    x = np.ones((200, 500), np.float32)
    y, _ = dropout_forward(x, p, np.random.default_rng(0))
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.005  # 100k draws: sd of the mean < 0.0016
    np.testing.assert_array_equal(y[kept], np.float32(1) / np.float32(1 - p))
    assert abs(y.mean() - 1) < 0.02  # inverted dropout keeps the expectation


def test_naive_loop_reference():
    x = np.random.default_rng(1).standard_normal((3, 4, 5))
    p = 0.3
    y, _ = dropout_forward(x, p, np.random.default_rng(2))
    u = np.random.default_rng(2).random(x.shape, dtype=np.float32)  # the same draws
    y_ref = np.zeros_like(x)
    for i, j, k in itertools.product(*map(range, x.shape)):
        if u[i, j, k] >= p:
            y_ref[i, j, k] = x[i, j, k] / (1 - p)
    np.testing.assert_allclose(y, y_ref, rtol=1e-15, atol=0)


def test_p_zero_is_identity():
    x = np.random.default_rng(3).standard_normal((4, 5))
    y, cache = dropout_forward(x, 0.0, None)
    assert y is x
    dy = np.ones_like(x)
    assert dropout_backward(dy, cache)[0] is dy


def test_deterministic_given_seed():
    x = np.ones((50, 40))
    a, _ = dropout_forward(x, 0.5, 42)
    b, _ = dropout_forward(x, 0.5, np.random.default_rng(42))
    c, _ = dropout_forward(x, 0.5, 43)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_is_mask_times_scale(dtype):
    rng = np.random.default_rng(4)
    x = rng.uniform(1, 2, (6, 7)).astype(dtype)  # nonzero, so y / x recovers the mask
    dy = rng.standard_normal((6, 7)).astype(dtype)
    y, cache = dropout_forward(x, 0.4, rng)
    (dx,) = dropout_backward(dy, cache)
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_gradient_central_differences():
    x = np.random.default_rng(5).standard_normal((3, 2, 4))

    def forward(dy):
        y, cache = dropout_forward(x, 0.5, 7)  # the same mask on every call
        return y, None if dy is None else dropout_backward(dy, cache)

    check_grads(forward, [x])


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_p(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)\. Received: p="):
        dropout_forward(np.ones(3), p, 0)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_matches_torch(p):
    torch = torch_or_skip()
    torch.manual_seed(0)
    rng = np.random.default_rng(6)
    x = rng.uniform(1, 2, (64, 32)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.dropout(xt, p, training=True)
    yt.backward(torch.tensor(dy))
    ours, _ = dropout_forward(np.ones_like(x), p, 0)
    scale = ours.max()  # our survivors' value: the factor, bit for bit as PyTorch's
    mask = yt.detach().numpy() != 0
    np.testing.assert_array_equal(yt.detach().numpy()[mask], x[mask] * scale)
    np.testing.assert_array_equal(xt.grad.numpy(), dy * mask.astype(np.float32) * scale)
