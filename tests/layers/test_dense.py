"""Dense layer: PyTorch parity, gradients, init, validation, config, accumulation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deltanet.gradcheck import numerical_gradient
from deltanet.layers.dense import Dense
from deltanet.ops.dense import dense_backward, dense_forward
from tests.utils import torch_or_skip

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-10}, np.float32: {"rtol": 1e-4, "atol": 1e-5}}


def _batch(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("bias", [True, False])
def test_forward_backward_match_ops(bias):
    layer = Dense(4, 3, bias, rng=0, dtype=np.float64)
    x, dy = _batch((5, 4)), _batch((5, 3), seed=1)
    y = layer(x)
    dx = layer.backward(dy)
    b = layer.bias.data if bias else None
    ey, cache = dense_forward(x, layer.weight.data, b)
    edx, edw, edb = dense_backward(dy, cache)
    np.testing.assert_array_equal(y, ey)
    np.testing.assert_array_equal(dx, edx)
    np.testing.assert_array_equal(layer.weight.grad, edw)
    if bias:
        np.testing.assert_array_equal(layer.bias.grad, edb)
    else:
        assert layer.bias is None and len(layer.parameters()) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_torch_parity(dtype, bias):
    torch = torch_or_skip()
    layer = Dense(6, 4, bias, rng=1, dtype=dtype)
    ref = torch.nn.Linear(6, 4, bias=bias, dtype=torch.float64 if dtype == np.float64 else None)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data))
        if bias:
            ref.bias.copy_(torch.tensor(layer.bias.data))
    x, dy = _batch((7, 6), dtype), _batch((7, 4), dtype, seed=2)
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(dy))
    y, dx = layer(x), layer.backward(dy)
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), **TOL[dtype])
    if bias:
        np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), **TOL[dtype])


def test_gradcheck_parameters_and_input():
    layer = Dense(3, 2, rng=3, dtype=np.float64)
    x = _batch((4, 3), seed=4)
    r = _batch((4, 2), seed=5)
    layer(x)
    dx = layer.backward(r)

    def loss():
        return float(np.sum(layer(x) * r))

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for p in layer.parameters():
        np.testing.assert_allclose(p.grad, numerical_gradient(loss, p.data), rtol=1e-6, atol=1e-8)


def test_grads_accumulate_and_zero():
    layer = Dense(3, 2, rng=0, dtype=np.float64)
    x, dy = _batch((4, 3)), _batch((4, 2), seed=1)
    layer(x)
    layer.backward(dy)
    once = [p.grad.copy() for p in layer.parameters()]
    layer.backward(dy)
    for p, g in zip(layer.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g)
    layer.zero_grad()
    assert all(not p.grad.any() for p in layer.parameters())


def test_torch_default_init():
    layer = Dense(400, 25, rng=0)
    bound = 1 / math.sqrt(400)
    assert layer.weight.shape == (25, 400) and layer.bias.shape == (25,)
    assert layer.weight.dtype == layer.bias.dtype == np.float32
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3)
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    np.testing.assert_array_equal(Dense(400, 25, rng=0).weight.data, layer.weight.data)
    assert not np.array_equal(Dense(400, 25, rng=1).weight.data, layer.weight.data)


@pytest.mark.parametrize("bias", [True, False])
def test_config_round_trip(bias):
    layer = Dense(5, 2, bias, rng=0, dtype=np.float64)
    config = layer.get_config()
    assert config == {"in_features": 5, "out_features": 2, "bias": bias, "dtype": "float64"}
    assert list(config) == ["in_features", "out_features", "bias", "dtype"]
    clone = Dense.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config and clone.weight.dtype == np.float64
    assert (clone.bias is None) == (not bias)
    assert repr(layer) == f"Dense(in_features=5, out_features=2, bias={bias}, dtype='float64')"


def test_wrong_input_shape_message():
    layer = Dense(400, 25)
    msg = r"Dense\(in_features=400\): expected input of shape \(N, 400\)\. Received: \(8, 300\)\."
    with pytest.raises(ValueError, match=msg):
        layer(np.zeros((8, 300), np.float32))
    with pytest.raises(ValueError, match=r"Received: \(8, 20, 20\)"):
        layer(np.zeros((8, 20, 20), np.float32))
    with pytest.raises(ValueError, match=r"Received: \(400,\)"):
        layer(np.zeros(400, np.float32))


def test_dtype_errors():
    layer = Dense(3, 2)
    with pytest.raises(TypeError, match=r"Dense\(in_features=3\): input dtype float64 .*float32"):
        layer(np.zeros((1, 3)))
    with pytest.raises(TypeError, match=r"Dense\(in_features=3\): expected a floating-point"):
        layer(np.zeros((1, 3), int))
    with pytest.raises(TypeError, match=r"Dense\(in_features=3\): expected a numpy.ndarray"):
        layer([[0.0, 0.0, 0.0]])


def test_backward_errors():
    layer = Dense(3, 2)
    with pytest.raises(ValueError, match=r"Dense\(in_features=3\): backward\(\) called before"):
        layer.backward(np.zeros((1, 2), np.float32))
    layer(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dense\(in_features=3\): expected dy of shape \(4, 2\)"):
        layer.backward(np.zeros((4, 3), np.float32))


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((0, 2), {}, ValueError, r"in_features must be a positive int. Received: 0"),
        ((3, -1), {}, ValueError, r"out_features must be a positive int. Received: -1"),
        ((3.0, 2), {}, TypeError, r"in_features must be a positive int. Received: 3.0"),
        ((True, 2), {}, TypeError, r"in_features must be a positive int. Received: True"),
        ((3, 2, "yes"), {}, TypeError, r"bias must be True or False. Received: 'yes'"),
        ((3, 2), {"dtype": np.int32}, TypeError, r"dtype must be a floating-point type"),
        ((3, 2), {"dtype": None}, TypeError, r"dtype must be a floating-point type"),
        ((3, 2), {"rng": "seed"}, TypeError, r"rng must be"),
    ],
)
def test_bad_constructor_args(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Dense(*args, **kwargs)


def test_backward_without_input_grad_gives_the_same_parameter_grads():
    rng = np.random.default_rng(0)
    layer = Dense(5, 3, rng=0)
    x, dy = rng.standard_normal((4, 5)).astype(np.float32), np.ones((4, 3), np.float32)
    layer(x)
    dx = layer.backward(dy)
    grads = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    assert dx.shape == (4, 5) and layer.backward(dy, input_grad=False) is None
    for g, p in zip(grads, layer.parameters()):
        np.testing.assert_array_equal(p.grad, g)
