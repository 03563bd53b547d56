"""Activation ops: naive loops, central differences, PyTorch parity, stability, dtypes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from deltanet.ops import activations as A
from tests.utils import check_grads, torch_or_skip

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 1e-4, "atol": 1e-6}}

# name -> (forward, backward, hyper-parameters, torch function name, torch kwargs)
CASES = {
    "sigmoid": (A.sigmoid_forward, A.sigmoid_backward, {}, "sigmoid", {}),
    "tanh": (A.tanh_forward, A.tanh_backward, {}, "tanh", {}),
    "relu": (A.relu_forward, A.relu_backward, {}, "relu", {}),
    "leaky_relu": (
        A.leaky_relu_forward,
        A.leaky_relu_backward,
        {"negative_slope": 0.2},
        "leaky_relu",
        {"negative_slope": 0.2},
    ),
    "elu": (A.elu_forward, A.elu_backward, {"alpha": 1.5}, "elu", {"alpha": 1.5}),
    "softplus": (
        A.softplus_forward,
        A.softplus_backward,
        {"beta": 2.0, "threshold": 3.0},
        "softplus",
        {"beta": 2.0, "threshold": 3.0},
    ),
    "softmax": (A.softmax_forward, A.softmax_backward, {"axis": 1}, "softmax", {"dim": 1}),
    "log_softmax": (
        A.log_softmax_forward,
        A.log_softmax_backward,
        {"axis": 1},
        "log_softmax",
        {"dim": 1},
    ),
}


def _safe_input(shape, dtype=np.float64, seed=0):
    """Values in ±[0.1, 3.1] (away from the kinks at 0); the softplus kink βx = 3 is at 1.5."""
    rng = np.random.default_rng(seed)
    x = np.sign(rng.standard_normal(shape)) * rng.uniform(0.1, 3.1, shape)
    x[np.abs(np.abs(x) - 1.5) < 0.05] = 0.7
    return x.astype(dtype)


def _naive_scalar(name, v, hyper):
    """The textbook formula and derivative of one element."""
    if name == "sigmoid":
        s = 1 / (1 + math.exp(-v))
        return s, s * (1 - s)
    if name == "tanh":
        return math.tanh(v), 1 - math.tanh(v) ** 2
    if name == "relu":
        return max(v, 0.0), float(v > 0)
    if name == "leaky_relu":
        a = hyper["negative_slope"]
        return (v, 1.0) if v > 0 else (a * v, a)
    if name == "elu":
        a = hyper["alpha"]
        return (v, 1.0) if v > 0 else (a * (math.exp(v) - 1), a * math.exp(v))
    beta, threshold = hyper["beta"], hyper["threshold"]
    if beta * v > threshold:
        return v, 1.0
    return math.log(1 + math.exp(beta * v)) / beta, 1 / (1 + math.exp(-beta * v))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus"])
def test_elementwise_matches_naive_loop(name):
    forward, backward, hyper, _, _ = CASES[name]
    x, dy = _safe_input((3, 4)), _safe_input((3, 4), seed=1)
    y, cache = forward(x, **hyper)
    (dx,) = backward(dy, cache)
    for idx in np.ndindex(x.shape):
        ny, nd = _naive_scalar(name, float(x[idx]), hyper)
        assert y[idx] == pytest.approx(ny, rel=1e-12, abs=1e-14)
        assert dx[idx] == pytest.approx(dy[idx] * nd, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_matches_naive_loop(log):
    forward, backward = (
        (A.log_softmax_forward, A.log_softmax_backward)
        if log
        else (A.softmax_forward, A.softmax_backward)
    )
    x, dy = _safe_input((3, 5)), _safe_input((3, 5), seed=1)
    y, cache = forward(x)
    (dx,) = backward(dy, cache)
    for n in range(3):
        total = sum(math.exp(x[n, j]) for j in range(5))
        p = [math.exp(x[n, j]) / total for j in range(5)]
        for i in range(5):
            expected = math.log(p[i]) if log else p[i]
            assert y[n, i] == pytest.approx(expected, rel=1e-12)
            # dx_i = Σ_j dy_j ∂y_j/∂x_i
            if log:
                grad = sum(dy[n, j] * ((i == j) - p[i]) for j in range(5))
            else:
                grad = sum(dy[n, j] * p[j] * ((i == j) - p[i]) for j in range(5))
            assert dx[n, i] == pytest.approx(grad, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    forward, backward, hyper, _, _ = CASES[name]
    x = _safe_input((3, 4, 2))

    def run(dy):
        y, cache = forward(x, **hyper)
        return y, None if dy is None else backward(dy, cache)

    check_grads(run, [x])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_axes_gradcheck(axis, log):
    forward, backward = (
        (A.log_softmax_forward, A.log_softmax_backward)
        if log
        else (A.softmax_forward, A.softmax_backward)
    )
    x = _safe_input((2, 3, 4), seed=3)

    def run(dy):
        y, cache = forward(x, axis=axis)
        return y, None if dy is None else backward(dy, cache)

    check_grads(run, [x])
    y, _ = forward(x, axis=axis)
    total = np.exp(y).sum(axis=axis) if log else y.sum(axis=axis)
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


def _torch_run(name, x, dy, kwargs):
    torch = torch_or_skip()
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, name, None) or getattr(torch, name)
    ty = ty(tx, **kwargs)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(CASES))
def test_torch_parity(name, dtype):
    forward, backward, hyper, tname, tkwargs = CASES[name]
    x = _safe_input((4, 5, 3), dtype, seed=4)
    dy = _safe_input((4, 5, 3), dtype, seed=5)
    y, cache = forward(x, **hyper)
    (dx,) = backward(dy, cache)
    ty, tdx = _torch_run(tname, x, dy, tkwargs)
    np.testing.assert_allclose(y, ty, **TOL[dtype])
    np.testing.assert_allclose(dx, tdx, **TOL[dtype])


@pytest.mark.parametrize("name", list(CASES))
def test_stable_at_1000_float32(name):
    forward, backward, hyper, tname, tkwargs = CASES[name]
    x = np.array([[-1000.0, -30.0, -1.0, 0.5, 30.0, 1000.0], [1000.0, 999.0, 0, -1000, 3, 2]])
    x = x.astype(np.float32)
    dy = np.ones_like(x)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y, cache = forward(x, **hyper)
        (dx,) = backward(dy, cache)
    assert y.dtype == dx.dtype == np.float32
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    ty, tdx = _torch_run(tname, x, dy, tkwargs)
    np.testing.assert_allclose(y, ty, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, tdx, rtol=1e-5, atol=1e-6)


def test_sigmoid_gradient_exercise_values():
    z = np.array([-1, -0.5, 0, 0.5, 1])
    expected = [0.196612, 0.235004, 0.250000, 0.235004, 0.196612]
    np.testing.assert_allclose(A.sigmoid_gradient(z), expected, atol=5e-7)
    y, cache = A.sigmoid_forward(z.astype(np.float64))
    np.testing.assert_allclose(A.sigmoid_backward(np.ones(5), cache)[0], expected, atol=5e-7)


def test_sigmoid_convenience():
    assert A.sigmoid(0) == 0.5
    np.testing.assert_allclose(A.sigmoid([-1000, 0, 1000]), [0.0, 0.5, 1.0])
    assert A.sigmoid(np.float32(2)).dtype == np.float32
    np.testing.assert_allclose(A.sigmoid(np.array([1.0, -2.0])), 1 / (1 + np.exp([-1.0, 2.0])))


@pytest.mark.parametrize("name", list(CASES))
def test_float32_preserved_with_numpy_scalar_hyper(name):
    forward, backward, hyper, _, _ = CASES[name]
    # np.float64 hyper-parameters must not upcast a float32 computation
    hyper = {k: (v if k == "axis" else np.float64(v)) for k, v in hyper.items()}
    x = _safe_input((2, 3), np.float32)
    y, cache = forward(x, **hyper)
    (dx,) = backward(np.ones_like(x), cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32


def test_softplus_threshold_is_linear():
    x = np.array([9.0, 10.5, 11.0, -11.0])
    y, cache = A.softplus_forward(x, beta=2.0, threshold=20.0)
    assert y[1] == 10.5 and y[2] == 11.0  # βx > 20: the input itself
    assert y[0] == pytest.approx(math.log1p(math.exp(18.0)) / 2, rel=1e-14)
    (dx,) = A.softplus_backward(np.ones(4), cache)
    assert dx[1] == dx[2] == 1.0


def test_relu_kink_gradient_is_zero():
    x = np.array([-1.0, 0.0, 2.0])
    y, cache = A.relu_forward(x)
    np.testing.assert_array_equal(A.relu_backward(np.ones(3), cache)[0], [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_backward_masks_exactly(dtype):
    """The masked δ is +0 even where it is NaN, inf or -0 (as np.where and PyTorch give it)."""
    y, cache = A.relu_forward(np.array([-1.0, 0.0, 2.0, -3.0, 4.0, 5.0], dtype=dtype))
    dy = np.array([np.nan, -np.inf, -2.5, -0.0, np.inf, -0.0], dtype=dtype)
    (dx,) = A.relu_backward(dy, cache)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.array([0, 0, -2.5, 0, np.inf, 0], dtype=dtype))
    assert not np.signbit(dx[:2]).any() and not np.signbit(dx[3])
    assert np.signbit(dx[5]), "an unmasked -0 stays -0, as dy passes through unchanged"
    reference = np.where(y > 0, dy, 0).astype(dtype)
    np.testing.assert_array_equal(dx.view(f"u{dx.itemsize}"), reference.view(f"u{dx.itemsize}"))


def test_relu_backward_non_contiguous_and_0d():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y, cache = A.relu_forward(x)
    dy = rng.standard_normal((6, 4)).astype(np.float32).T  # a transposed view
    np.testing.assert_array_equal(A.relu_backward(dy, cache)[0], np.where(x > 0, dy, 0))
    y0, cache0 = A.relu_forward(np.array(2.0))
    assert A.relu_backward(np.array(3.0), cache0)[0] == 3.0
