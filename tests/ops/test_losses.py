"""Losses: naive loops, central differences, PyTorch parity, stability, validation, dtypes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from deltanet.gradcheck import numerical_gradient
from deltanet.ops.activations import sigmoid_backward, sigmoid_forward
from deltanet.ops.losses import (
    binary_cross_entropy,
    mean_squared_error,
    sigmoid_cross_entropy,
    softmax_cross_entropy,
)
from tests.utils import torch_or_skip

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 1e-4, "atol": 1e-6}}


def _logits(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype) * 2


def _labels(shape, k, seed=1):
    return np.random.default_rng(seed).integers(0, k, shape)


def _probs(shape, dtype=np.float64, seed=2):
    p = np.random.default_rng(seed).uniform(0.05, 1.0, shape)
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def _assert_gradcheck(loss_fn, x, *args, **kwargs):
    _, grad = loss_fn(x, *args, **kwargs)
    num = numerical_gradient(lambda: loss_fn(x, *args, **kwargs)[0], x)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


# --- softmax cross-entropy ---------------------------------------------------------------------


def test_softmax_ce_matches_naive_loop():
    z, y = _logits((4, 3)), _labels(4, 3)
    loss, dz = softmax_cross_entropy(z, y)
    expected, grad = 0.0, np.zeros_like(z)
    for n in range(4):
        total = sum(math.exp(z[n, k]) for k in range(3))
        expected -= math.log(math.exp(z[n, y[n]]) / total) / 4
        for k in range(3):
            grad[n, k] = (math.exp(z[n, k]) / total - (k == y[n])) / 4
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(dz, grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("kind", ["labels", "probs", "spatial_labels", "spatial_probs"])
def test_softmax_ce_gradcheck(kind, smoothing, reduction):
    shape = (3, 4) if kind in ("labels", "probs") else (2, 3, 2, 2)
    z = _logits(shape)
    target = _labels((shape[0], *shape[2:]), shape[1]) if "labels" in kind else _probs(shape)
    _assert_gradcheck(softmax_cross_entropy, z, target, reduction, smoothing)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["labels", "probs", "spatial_labels", "spatial_probs"])
def test_softmax_ce_torch_parity(kind, smoothing, reduction, dtype):
    torch = torch_or_skip()
    shape = (5, 4) if kind in ("labels", "probs") else (2, 3, 4, 2)
    z = _logits(shape, dtype)
    target = _labels((shape[0], *shape[2:]), shape[1]) if "labels" in kind else _probs(shape)
    loss, dz = softmax_cross_entropy(z, target, reduction, label_smoothing=smoothing)
    tz = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(target) if "labels" in kind else torch.tensor(target.astype(dtype))
    tloss = torch.nn.functional.cross_entropy(
        tz, tt, reduction=reduction, label_smoothing=smoothing
    )
    tloss.backward()
    assert isinstance(loss, float)
    assert loss == pytest.approx(tloss.item(), **{"rel": TOL[dtype]["rtol"]})
    assert dz.dtype == dtype and dz.shape == z.shape
    np.testing.assert_allclose(dz, tz.grad.numpy(), **TOL[dtype])


def test_softmax_ce_refuses_targets_that_are_not_distributions():
    """PyTorch takes any numbers as soft targets (a silently wrong loss); deltanet refuses."""
    z = _logits((4, 3))
    t = np.random.default_rng(3).uniform(0, 2, (4, 3))
    with pytest.raises(ValueError, match=r"sum to 1 along axis 1.*4 of 4 .*First: row 0, sum"):
        softmax_cross_entropy(z, t)
    t = _probs((4, 3))
    t[2] = [1.2, -0.2, 0.0]  # sums to 1, but a negative "probability"
    with pytest.raises(ValueError, match=r"1 of 4 distributions.*row 2, sum 1, min -0.2"):
        softmax_cross_entropy(z, t)
    # float32 rounding of a distribution is not an error, for float64 logits too
    t32 = _probs((4, 1000), np.float32)
    softmax_cross_entropy(_logits((4, 1000)), t32)
    softmax_cross_entropy(_logits((4, 1000), np.float32), t32)


def test_softmax_ce_gradient_is_softmax_minus_onehot():
    z, y = _logits((6, 5)), _labels(6, 5)
    _, dz = softmax_cross_entropy(z, y, reduction="sum")
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dz, p - np.eye(5)[y], rtol=1e-12, atol=1e-15)
    _, dz_mean = softmax_cross_entropy(z, y)
    np.testing.assert_allclose(dz_mean, dz / 6, rtol=1e-14)
    # one-hot probabilities give the same loss and gradient as the labels
    np.testing.assert_allclose(softmax_cross_entropy(z, np.eye(5)[y])[1], dz_mean, rtol=1e-12)


def test_softmax_ce_stable_at_1000_float32():
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], np.float32)
    for target in (np.array([1, 2]), np.array([[0.5, 0.5, 0], [0, 0, 1]], np.float32)):
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            loss, dz = softmax_cross_entropy(z, target, label_smoothing=0.1)
        assert math.isfinite(loss) and np.isfinite(dz).all() and dz.dtype == np.float32


# --- sigmoid (one-vs-all) cross-entropy and BCE on probabilities ------------------------------


def test_sigmoid_ce_is_the_digit_network_cost():
    """J = (1/m) Σ_i Σ_k [-y log h - (1-y) log(1-h)], written as in the exercise."""
    m, k = 5, 10
    z = _logits((m, k))
    y = np.eye(k)[_labels(m, k)]
    j, dz = sigmoid_cross_entropy(z, y)
    h = 1 / (1 + np.exp(-z))
    expected = 0.0
    for i in range(m):
        for c in range(k):
            expected += -y[i, c] * math.log(h[i, c]) - (1 - y[i, c]) * math.log(1 - h[i, c])
    assert j == pytest.approx(expected / m, rel=1e-12)
    np.testing.assert_allclose(dz, (h - y) / m, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 2)])
def test_sigmoid_ce_gradcheck(shape, reduction):
    z = _logits(shape)
    y = np.random.default_rng(5).uniform(0, 1, shape)
    _assert_gradcheck(sigmoid_cross_entropy, z, y, reduction)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sigmoid_ce_torch_parity(reduction, dtype):
    torch = torch_or_skip()
    z = _logits((6, 4), dtype)
    y = np.random.default_rng(6).uniform(0, 1, (6, 4)).astype(dtype)
    loss, dz = sigmoid_cross_entropy(z, y, reduction)
    tz = torch.tensor(z, requires_grad=True)
    # our "mean" divides by N only: compare with torch's sum / N
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(
        tz, torch.tensor(y), reduction="sum"
    ) / (6 if reduction == "mean" else 1)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=TOL[dtype]["rtol"])
    assert dz.dtype == dtype
    np.testing.assert_allclose(dz, tz.grad.numpy(), **TOL[dtype])


def test_sigmoid_ce_stable_at_1000_float32():
    z = np.array([[-1000.0, 1000.0], [1000.0, -1000.0]], np.float32)
    y = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        loss, dz = sigmoid_cross_entropy(z, y, reduction="sum")
    assert loss == pytest.approx(2000.0)  # the two wrong signs cost |z| each
    np.testing.assert_array_equal(dz, [[0, 0], [1, -1]])
    assert dz.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_torch_parity(reduction, dtype):
    torch = torch_or_skip()
    a = np.random.default_rng(7).uniform(0.02, 0.98, (5, 3)).astype(dtype)
    y = np.random.default_rng(8).uniform(0, 1, (5, 3)).astype(dtype)
    loss, da = binary_cross_entropy(a, y, reduction)
    ta = torch.tensor(a, requires_grad=True)
    tloss = torch.nn.functional.binary_cross_entropy(ta, torch.tensor(y), reduction="sum") / (
        5 if reduction == "mean" else 1
    )
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=TOL[dtype]["rtol"])
    assert da.dtype == dtype
    np.testing.assert_allclose(da, ta.grad.numpy(), **TOL[dtype])


def test_bce_after_sigmoid_backward_is_a_minus_y():
    z = _logits((4, 3))
    y = np.eye(3)[_labels(4, 3)]
    a, cache = sigmoid_forward(z)
    loss, da = binary_cross_entropy(a, y)
    (dz,) = sigmoid_backward(da, cache)
    np.testing.assert_allclose(dz, (a - y) / 4, rtol=1e-9, atol=1e-14)
    assert loss == pytest.approx(sigmoid_cross_entropy(z, y)[0], rel=1e-12)
    _assert_gradcheck(binary_cross_entropy, a, y)


def test_bce_saturated_probabilities_are_finite():
    a = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        loss, da = binary_cross_entropy(a, y, reduction="sum")
    assert loss == pytest.approx(200.0)  # log clamped at -100, as PyTorch
    assert np.isfinite(da).all() and da.dtype == np.float32


# --- mean squared error ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_torch_parity_and_gradcheck(reduction, dtype):
    torch = torch_or_skip()
    p, y = _logits((3, 4, 2), dtype), _logits((3, 4, 2), dtype, seed=9)
    loss, dp = mean_squared_error(p, y, reduction)
    tp = torch.tensor(p, requires_grad=True)
    tloss = torch.nn.functional.mse_loss(tp, torch.tensor(y), reduction=reduction)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=TOL[dtype]["rtol"])
    assert dp.dtype == dtype
    np.testing.assert_allclose(dp, tp.grad.numpy(), **TOL[dtype])
    if dtype == np.float64:
        _assert_gradcheck(mean_squared_error, p, y, reduction)


# --- dtypes and validation ---------------------------------------------------------------------


def test_float32_kept_with_float64_targets():
    z = _logits((3, 4), np.float32)
    t = _probs((3, 4))  # float64
    assert softmax_cross_entropy(z, t, label_smoothing=np.float64(0.1))[1].dtype == np.float32
    assert sigmoid_cross_entropy(z, t)[1].dtype == np.float32
    assert binary_cross_entropy(t.astype(np.float32), t)[1].dtype == np.float32
    assert mean_squared_error(z, t)[1].dtype == np.float32
    assert sigmoid_cross_entropy(z, (t > 0.25).astype(int))[1].dtype == np.float32


LOSSES = [softmax_cross_entropy, sigmoid_cross_entropy, binary_cross_entropy, mean_squared_error]


@pytest.mark.parametrize("fn", LOSSES)
def test_bad_reduction(fn):
    with pytest.raises(ValueError, match=rf'{fn.__name__}: reduction must be "mean" or "sum"'):
        fn(np.full((2, 3), 0.5), np.full((2, 3), 0.5), reduction="none")


@pytest.mark.parametrize("fn", LOSSES)
def test_integer_input_rejected(fn):
    with pytest.raises(TypeError, match=rf"{fn.__name__}: expected .* floating-point"):
        fn(np.zeros((2, 3), int), np.zeros((2, 3)))


@pytest.mark.parametrize("fn", LOSSES)
def test_shape_mismatch(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: expected .*Received: \(2, 4\)"):
        fn(np.full((2, 3), 0.5), np.full((2, 4), 0.5))


@pytest.mark.parametrize("fn", LOSSES)
def test_non_finite_target(fn):
    t = np.full((2, 3), 0.5)
    t[1, 1] = np.nan
    with pytest.raises(ValueError, match=rf"{fn.__name__}: target must be finite"):
        fn(np.full((2, 3), 0.5), t)


@pytest.mark.parametrize(
    "target, match",
    [
        (np.array([0, 3]), r"labels must be in \[0, 3\)\. Received: min 0, max 3"),
        (np.array([-1, 0]), r"labels must be in \[0, 3\)"),
        (np.array([0, 1, 2]), r"expected integer labels of shape \(2,\).*Received: \(3,\)"),
        (np.array([[0], [1]]), r"expected integer labels of shape \(2,\)"),
    ],
)
def test_softmax_ce_bad_labels(target, match):
    with pytest.raises(ValueError, match="softmax_cross_entropy: " + match):
        softmax_cross_entropy(np.zeros((2, 3)), target)


def test_softmax_ce_bad_arguments():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"label_smoothing must be a float in \[0, 1\]"):
        softmax_cross_entropy(z, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="label_smoothing must be a float"):
        softmax_cross_entropy(z, np.array([0, 1]), label_smoothing="0.1")
    with pytest.raises(ValueError, match=r"expected logits of shape \(N, K, \.\.\.\)"):
        softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(TypeError, match=r"labels of shape \(2,\) must be integers.*float64"):
        softmax_cross_entropy(z, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="softmax_cross_entropy: expected .*Received: list"):
        softmax_cross_entropy([[0.0, 1.0]], np.array([0]))


@pytest.mark.parametrize("fn", [sigmoid_cross_entropy, binary_cross_entropy])
def test_targets_outside_unit_interval(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: target values must be in \[0, 1\]"):
        fn(np.full((2, 2), 0.5), np.array([[0.0, 1.5], [0.0, 1.0]]))


def test_bce_probs_outside_unit_interval():
    with pytest.raises(ValueError, match=r"binary_cross_entropy: probs values must be in \[0, 1\]"):
        binary_cross_entropy(np.array([[-0.1, 0.5]]), np.array([[0.0, 1.0]]))
