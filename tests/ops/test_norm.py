"""Batch-norm ops: naive loops, central differences, PyTorch's F.batch_norm, dtypes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deltanet.ops.norm import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference,
    batch_norm_inference_backward,
    batch_norm_stats,
)
from tests.utils import check_grads, torch_or_skip

SHAPES = [(5, 3), (3, 2, 4), (2, 3, 3, 2), (2, 2, 2, 3, 2)]


def _data(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    return x, gamma, beta


def _channel_indices(shape, c):
    """Every index of channel ``c`` in an array of ``shape`` (explicit Python loops)."""
    rest = [range(shape[0])] + [range(s) for s in shape[2:]]
    for idx in itertools.product(*rest):
        yield (idx[0], c, *idx[1:])


def naive_batch_norm(x, gamma, beta, eps):
    """Per channel: mean, biased variance and the normalised values, one element at a time."""
    y = np.zeros_like(x)
    means, variances = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for c in range(x.shape[1]):
        values = [x[i] for i in _channel_indices(x.shape, c)]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        means[c], variances[c] = mean, var
        for i in _channel_indices(x.shape, c):
            y[i] = gamma[c] * (x[i] - mean) / np.sqrt(var + eps) + beta[c]
    return y, means, variances


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_naive_loops(shape):
    x, gamma, beta = _data(shape)
    y, cache = batch_norm_forward(x, gamma, beta, eps=1e-3)
    y_ref, mean_ref, var_ref = naive_batch_norm(x, gamma, beta, 1e-3)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    m = x.size // x.shape[1]
    mean, var_unbiased = batch_norm_stats(cache)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var_unbiased, var_ref * m / (m - 1), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_matches_naive_loops(shape):
    x, gamma, beta = _data(shape)
    rng = np.random.default_rng(1)
    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2.0, shape[1])
    y, _ = batch_norm_inference(x, gamma, beta, rm, rv, eps=1e-3)
    y_ref = np.zeros_like(x)
    for c in range(shape[1]):
        for i in _channel_indices(shape, c):
            y_ref[i] = gamma[c] * (x[i] - rm[c]) / np.sqrt(rv[c] + 1e-3) + beta[c]
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_gradients_central_differences(shape):
    x, gamma, beta = _data(shape, seed=2)

    def forward(dy):
        y, cache = batch_norm_forward(x, gamma, beta, eps=1e-5)
        return y, None if dy is None else batch_norm_backward(dy, cache)

    check_grads(forward, [x, gamma, beta], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_gradients_central_differences(shape):
    x, gamma, beta = _data(shape, seed=3)
    rng = np.random.default_rng(4)
    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2.0, shape[1])

    def forward(dy):
        y, cache = batch_norm_inference(x, gamma, beta, rm, rv, eps=1e-5)
        return y, None if dy is None else batch_norm_inference_backward(dy, cache)

    check_grads(forward, [x, gamma, beta], rtol=1e-6, atol=1e-8)


def test_gradient_of_normalised_output_sums_to_zero_per_channel():
    # The mean is subtracted, so a uniform shift of a channel changes nothing: sum(dx) = 0.
    x, gamma, beta = _data((4, 3, 5), seed=5)
    y, cache = batch_norm_forward(x, gamma, beta)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    dx, _, _ = batch_norm_backward(dy, cache)
    np.testing.assert_allclose(dx.sum(axis=(0, 2)), 0, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("shape", SHAPES)
def test_training_matches_torch(shape, dtype, tol):
    torch = torch_or_skip()
    x, gamma, beta = _data(shape, dtype, seed=7)
    dy = np.random.default_rng(8).standard_normal(shape).astype(dtype)
    y, cache = batch_norm_forward(x, gamma, beta, eps=1e-5)
    dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    yt.backward(torch.tensor(dy))
    for ours, theirs in [(y, yt), (dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)]:
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("shape", SHAPES)
def test_inference_matches_torch(shape, dtype, tol):
    torch = torch_or_skip()
    x, gamma, beta = _data(shape, dtype, seed=9)
    rng = np.random.default_rng(10)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y, cache = batch_norm_inference(x, gamma, beta, rm, rv, eps=1e-5)
    dx, dgamma, dbeta = batch_norm_inference_backward(dy, cache)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = torch.nn.functional.batch_norm(
        xt, torch.tensor(rm), torch.tensor(rv), gt, bt, training=False, eps=1e-5
    )
    yt.backward(torch.tensor(dy))
    for ours, theirs in [(y, yt), (dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)]:
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("param_dtype", [np.float32, np.float64])
def test_float32_stays_float32(param_dtype):
    x, gamma, beta = _data((4, 3, 2, 2), np.float32, seed=11)
    gamma, beta = gamma.astype(param_dtype), beta.astype(param_dtype)
    stats = np.ones(3, param_dtype)
    y, cache = batch_norm_forward(x, gamma, beta)
    grads = batch_norm_backward(np.ones_like(y), cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert all(s.dtype == np.float32 for s in batch_norm_stats(cache))
    y, cache = batch_norm_inference(x, gamma, beta, stats * 0, stats)
    grads = batch_norm_inference_backward(np.ones_like(y), cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


def test_stats_need_more_than_one_value_per_channel():
    x, gamma, beta = _data((1, 3))
    _, cache = batch_norm_forward(x, gamma, beta)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm_stats(cache)
