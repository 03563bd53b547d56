"""kl_sparsity_forward / kl_sparsity_backward: naive loops, central differences, PyTorch parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deltanet.gradcheck import gradcheck
from deltanet.ops.sparsity import kl_sparsity_backward, kl_sparsity_forward
from tests.utils import check_grads, torch_or_skip


def _activations(n=6, h=4, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.02, 0.6, (n, h)).astype(dtype)


def _naive(a, rho, beta):
    """Penalty and gradient by explicit loops over units and examples."""
    n, h = a.shape
    value, grad = 0.0, np.zeros((n, h))
    for j in range(h):
        rho_hat = sum(a[i, j] for i in range(n)) / n
        value += beta * (
            rho * math.log(rho / rho_hat) + (1 - rho) * math.log((1 - rho) / (1 - rho_hat))
        )
        for i in range(n):
            grad[i, j] = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) / n
    return value, grad


@pytest.mark.parametrize("rho, beta", [(0.05, 3.0), (0.1, 1.0), (0.5, 0.2)])
@pytest.mark.parametrize("shape", [(1, 1), (6, 4), (9, 2)])
def test_matches_naive_loops(shape, rho, beta):
    a = _activations(*shape)
    y, cache = kl_sparsity_forward(a, rho, beta)
    (da,) = kl_sparsity_backward(np.float64(1.5), cache)
    value, grad = _naive(a, rho, beta)
    assert y.shape == () and y.dtype == np.float64
    np.testing.assert_allclose(float(y), value, rtol=1e-12)
    np.testing.assert_allclose(da, 1.5 * grad, rtol=1e-12)


def test_penalty_is_zero_at_the_target():
    a = np.full((5, 3), 0.2)
    y, cache = kl_sparsity_forward(a, rho=0.2, beta=3.0)
    assert abs(float(y)) < 1e-15
    np.testing.assert_allclose(kl_sparsity_backward(1.0, cache)[0], 0.0, atol=1e-15)


@pytest.mark.parametrize("rho, beta", [(0.05, 3.0), (0.3, 0.7)])
def test_central_differences(rho, beta):
    a = _activations(7, 3, seed=1)

    def forward(dy):
        y, cache = kl_sparsity_forward(a, rho, beta)
        return y, (None if dy is None else kl_sparsity_backward(dy, cache))

    check_grads(forward, [a], rtol=1e-6, atol=1e-9)
    report = gradcheck((kl_sparsity_forward, kl_sparsity_backward), a, hyper={"rho": rho})
    assert report.max_rel_diff < 1e-8, str(report)


def test_float32_stays_float32():
    a = _activations(dtype=np.float32)
    y, cache = kl_sparsity_forward(a)
    (da,) = kl_sparsity_backward(np.float32(1.0), cache)
    assert y.dtype == np.float32 and da.dtype == np.float32 and da.shape == a.shape


@pytest.mark.parametrize("rho, beta", [(0.05, 3.0), (0.2, 0.5)])
def test_torch_parity(rho, beta):
    torch = torch_or_skip()
    a = _activations(8, 5, seed=2)
    at = torch.tensor(a, requires_grad=True)
    rho_hat = at.mean(dim=0)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    penalty = beta * kl.sum()
    penalty.backward()
    y, cache = kl_sparsity_forward(a, rho, beta)
    (da,) = kl_sparsity_backward(1.0, cache)
    np.testing.assert_allclose(float(y), penalty.item(), rtol=1e-12)
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "a, kwargs, error, match",
    [
        ([[0.1, 0.2]], {}, TypeError, "floating-point numpy array"),
        (np.full((3,), 0.1), {}, ValueError, r"shape \(N, H\)"),
        (np.zeros((0, 3)), {}, ValueError, r"shape \(N, H\)"),
        (np.full((2, 2), 0.1), {"rho": 1.0}, ValueError, "rho must be in"),
        (np.full((2, 2), 0.1), {"rho": "0.1"}, TypeError, "rho must be a number"),
        (np.full((2, 2), 0.1), {"beta": -1.0}, ValueError, "beta must be"),
        (np.array([[0.0, 0.2], [0.0, 0.3]]), {}, ValueError, "mean activation"),
        (np.array([[1.0, 0.2], [1.0, 0.3]]), {}, ValueError, "mean activation"),
    ],
)
def test_bad_input_is_named(a, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        kl_sparsity_forward(a, **kwargs)
    assert "kl_sparsity_forward" in str(info.value)
