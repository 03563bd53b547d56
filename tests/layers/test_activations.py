"""Activation layers: PyTorch module parity, gradients, config, validation, dtypes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deltanet.layers.activations import (
    ELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from tests.utils import check_grads, torch_or_skip

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 1e-4, "atol": 1e-6}}

# layer factory -> (torch module name, torch kwargs)
LAYERS = [
    (ReLU, {}, "ReLU", {}),
    (Sigmoid, {}, "Sigmoid", {}),
    (Tanh, {}, "Tanh", {}),
    (LeakyReLU, {"negative_slope": 0.3}, "LeakyReLU", {"negative_slope": 0.3}),
    (ELU, {"alpha": 0.7}, "ELU", {"alpha": 0.7}),
    (Softplus, {"beta": 1.5, "threshold": 2.0}, "Softplus", {"beta": 1.5, "threshold": 2.0}),
    (Softmax, {"axis": 1}, "Softmax", {"dim": 1}),
    (LogSoftmax, {"axis": -1}, "LogSoftmax", {"dim": -1}),
]
IDS = [cls.__name__ for cls, *_ in LAYERS]


def _safe_input(shape, dtype=np.float64, seed=0):
    """Values in ±[0.1, 2.1], away from the kinks at 0 (and from softplus' βx = 2 at 4/3)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(np.sign(rng.standard_normal(shape)) * rng.uniform(0.1, 2.1, shape))
    x[np.abs(np.abs(x) - 4 / 3) < 0.05] = 0.6
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kwargs, tname, tkwargs", LAYERS, ids=IDS)
def test_torch_module_parity(cls, kwargs, tname, tkwargs, dtype):
    torch = torch_or_skip()
    layer = cls(**kwargs)
    x, dy = _safe_input((2, 3, 4, 2), dtype), _safe_input((2, 3, 4, 2), dtype, seed=1)
    y = layer(x)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn, tname)(**tkwargs)(tx)
    ty.backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == dtype and y.shape == dx.shape == x.shape
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("cls, kwargs, tname, tkwargs", LAYERS, ids=IDS)
def test_gradcheck(cls, kwargs, tname, tkwargs):
    layer = cls(**kwargs)
    x = _safe_input((3, 4), seed=2)

    def run(dy):
        y = layer(x)
        return y, None if dy is None else [layer.backward(dy)]

    check_grads(run, [x])


@pytest.mark.parametrize("cls, kwargs, tname, tkwargs", LAYERS, ids=IDS)
def test_config_round_trip_and_no_parameters(cls, kwargs, tname, tkwargs):
    layer = cls(**kwargs)
    config = layer.get_config()
    assert config == kwargs
    clone = cls.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    assert layer.parameters() == [] and layer.num_parameters() == 0
    x = _safe_input((2, 5), seed=3)
    np.testing.assert_array_equal(clone(x), layer(x))


def test_labels_and_defaults():
    assert ReLU().label() == "ReLU()"
    assert LeakyReLU().label() == "LeakyReLU(negative_slope=0.01)"
    assert ELU().get_config() == {"alpha": 1.0}
    assert Softplus().get_config() == {"beta": 1.0, "threshold": 20.0}
    assert Softmax().label() == "Softmax(axis=1)"
    assert LogSoftmax().get_config() == {"axis": 1}


@pytest.mark.parametrize("cls, kwargs, tname, tkwargs", LAYERS, ids=IDS)
def test_backward_before_forward(cls, kwargs, tname, tkwargs):
    layer = cls(**kwargs)
    with pytest.raises(ValueError, match=rf"{cls.__name__}\(.*\): backward\(\) called before"):
        layer.backward(np.ones((2, 3)))


@pytest.mark.parametrize("cls, kwargs, tname, tkwargs", LAYERS, ids=IDS)
def test_bad_inputs(cls, kwargs, tname, tkwargs):
    layer = cls(**kwargs)
    with pytest.raises(TypeError, match=rf"{cls.__name__}\(.*\): expected a floating-point"):
        layer(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match=rf"{cls.__name__}\(.*\): expected a numpy.ndarray"):
        layer([[1.0, 2.0]])
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"{cls.__name__}\(.*\): expected dy of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2)))


@pytest.mark.parametrize("cls, kwargs, tname, tkwargs", LAYERS[:6], ids=IDS[:6])
def test_elementwise_any_shape(cls, kwargs, tname, tkwargs):
    layer = cls(**kwargs)
    for shape in [(), (5,), (2, 3, 1, 2, 2)]:
        x = _safe_input(shape, np.float32, seed=4)
        assert layer(x).shape == shape and layer.backward(np.ones_like(x)).dtype == np.float32


@pytest.mark.parametrize("cls", [Softmax, LogSoftmax])
def test_softmax_needs_two_dims(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\(axis=1\): expected input with at "):
        cls()(np.ones(4))
    with pytest.raises(ValueError, match=r"has axis 3. Received: \(2, 3\)"):
        cls(axis=3)(np.ones((2, 3)))
    y = cls(axis=0)(np.zeros((4, 2)))
    np.testing.assert_allclose(np.exp(y) if cls is LogSoftmax else y, 0.25)


@pytest.mark.parametrize(
    "cls, kwargs, error, match",
    [
        (LeakyReLU, {"negative_slope": "0.1"}, TypeError, "negative_slope must be a number"),
        (LeakyReLU, {"negative_slope": True}, TypeError, "negative_slope must be a number"),
        (ELU, {"alpha": float("nan")}, ValueError, "alpha must be finite"),
        (Softplus, {"beta": 0.0}, ValueError, "beta must be a positive number. Received: 0.0"),
        (Softplus, {"threshold": None}, TypeError, "threshold must be a number"),
        (Softmax, {"axis": 1.0}, TypeError, r"axis must be an int. Received: 1.0"),
        (LogSoftmax, {"axis": "1"}, TypeError, "axis must be an int"),
    ],
)
def test_bad_constructor_args(cls, kwargs, error, match):
    with pytest.raises(error, match=rf"{cls.__name__}: {match}"):
        cls(**kwargs)


def test_numpy_scalar_hyperparameters_keep_float32_and_json():
    layer = LeakyReLU(np.float64(0.2))
    assert type(layer.get_config()["negative_slope"]) is float
    x = _safe_input((2, 3), np.float32)
    assert layer(x).dtype == np.float32 and layer.backward(x).dtype == np.float32


def test_cache_serves_several_backward_passes():
    layer = Sigmoid()
    x = _safe_input((2, 3))
    layer(x)
    first = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), first)
