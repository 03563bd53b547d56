"""Full-batch minimisation through scipy: convergence, the L2 cost, dtypes, flat vectors."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.layers import Dense, Dropout, ReLU, Sequential
from deltanet.ops.losses import softmax_cross_entropy
from deltanet.train.fullbatch import flatten_parameters, minimize, unflatten_parameters


def _separable(n=60, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = np.argmax(x @ rng.standard_normal((features, classes)), axis=1)
    return x, y


def _hand_cost(w, b, x, y, l2):
    """Mean softmax cross-entropy of x Wᵀ + b plus l2/(2N) Σ W², and its gradient (dW, db)."""
    n = len(x)
    z = x @ w.T + b
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    onehot = np.eye(w.shape[0])[y]
    cost = -np.mean(logp[np.arange(n), y]) + l2 / (2 * n) * np.sum(w**2)
    delta = (np.exp(logp) - onehot) / n
    return cost, delta.T @ x + l2 / n * w, delta.sum(axis=0)


@pytest.mark.parametrize("method", ["CG", "L-BFGS-B"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_reduces_cost_and_ends_at_a_stationary_point(method, l2):
    x, y = _separable()
    model = Sequential(Dense(5, 3, rng=0))
    weight = model[0].weight.data  # the same array must hold the result
    start = softmax_cross_entropy(model(x), y)[0]
    result = minimize(model, softmax_cross_entropy, x, y, method=method, maxiter=100, l2=l2)
    assert result.fun < 0.2 * start
    assert np.abs(result.jac).max() < 1e-4
    assert model[0].weight.data is weight and weight.dtype == np.float32
    assert model[0].bias.data.dtype == np.float32 and model[0].weight.grad.dtype == np.float32
    assert not model[0].weight.grad.any()
    np.testing.assert_allclose(flatten_parameters(model), result.x, rtol=1e-6, atol=1e-6)
    final = softmax_cross_entropy(model(x), y)[0]
    assert final < 0.2 * start


@pytest.mark.parametrize("method", ["CG", "L-BFGS-B"])
def test_l2_cost_and_gradient_match_hand_computation(method):
    x, y = _separable(n=40)
    x = x.astype(np.float64)
    l2 = 0.7
    model = Sequential(Dense(5, 3, rng=1, dtype=np.float64))
    result = minimize(model, softmax_cross_entropy, x, y, method=method, maxiter=3, l2=l2)
    w, b = model[0].weight.data, model[0].bias.data  # float64: exactly result.x
    np.testing.assert_array_equal(flatten_parameters(model), result.x)
    cost, dw, db = _hand_cost(w, b, x, y, l2)  # the bias is not penalised
    assert result.fun == pytest.approx(cost, rel=1e-12)
    np.testing.assert_allclose(result.jac, np.concatenate([dw.ravel(), db]), rtol=1e-9, atol=1e-12)


def test_callback_and_deeper_model():
    x, y = _separable(n=30, features=4)
    model = Sequential(Dense(4, 6, rng=0), ReLU(), Dense(6, 3, rng=1))
    seen = []
    result = minimize(model, softmax_cross_entropy, x, y, maxiter=5, callback=seen.append)
    assert 1 <= len(seen) <= 5 and result.nit == len(seen)
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_failure_restores_parameters():
    x, y = _separable(n=10)
    model = Sequential(Dense(5, 3, rng=0))
    before = flatten_parameters(model)
    weight = model[0].weight.data

    def broken_loss(logits, labels):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        minimize(model, broken_loss, x, y)
    assert model[0].weight.data is weight and weight.dtype == np.float32
    np.testing.assert_array_equal(flatten_parameters(model), before)


def test_flatten_unflatten_round_trip():
    model = Sequential(Dense(4, 6, rng=0), ReLU(), Dropout(0.5), Dense(6, 2, rng=1))
    vector = flatten_parameters(model)
    assert vector.dtype == np.float64 and vector.shape == (4 * 6 + 6 + 6 * 2 + 2,)
    np.testing.assert_array_equal(vector[:24], model[0].weight.data.ravel())
    np.testing.assert_array_equal(vector[-2:], model[3].bias.data)
    new = np.arange(vector.size, dtype=np.float64) / 10
    unflatten_parameters(model, new)
    assert model[0].weight.dtype == np.float32
    np.testing.assert_allclose(flatten_parameters(model), new, rtol=1e-7)
    np.testing.assert_array_equal(
        model[0].weight.data, (np.arange(24, dtype=np.float32) / 10).reshape(6, 4)
    )
    with pytest.raises(ValueError, match=r"expected a vector of shape \(44,\) .* Received: \(3,\)"):
        unflatten_parameters(model, np.zeros(3))
    with pytest.raises(TypeError, match="Expected a deltanet Layer"):
        flatten_parameters([1, 2])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "Nelder-Mead"}, ValueError, r"scipy gradient method.*'Nelder-Mead'"),
        ({"maxiter": 0}, ValueError, r"maxiter must be a positive int. Received: 0"),
        ({"l2": -1.0}, ValueError, r"l2 must be .* Received: -1.0"),
        ({"loss": "cross_entropy"}, TypeError, r"loss must be a callable"),
        ({"x": np.zeros((10, 5), np.int64)}, TypeError, r"x must be a float array .* int64"),
        ({"y": np.zeros(3, np.int64)}, ValueError, r"same number of samples. Received: 10 and 3"),
        ({"model": Sequential(ReLU())}, ValueError, r"has no parameters"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    x, y = _separable(n=10)
    args = {"model": Sequential(Dense(5, 3, rng=0)), "loss": softmax_cross_entropy, "x": x, "y": y}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        minimize(**args)
