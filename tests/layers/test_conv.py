"""Conv1D/2D/3D and ConvTranspose1D/2D/3D layers: parity, gradients, errors, config, dtypes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deltanet.layers.conv import (
    Conv1D,
    Conv2D,
    Conv3D,
    ConvND,
    ConvTranspose1D,
    ConvTranspose2D,
    ConvTranspose3D,
)
from deltanet.ops.window import resolve_padding
from tests.ops.test_conv import assert_close, naive_conv, naive_conv_transpose
from tests.utils import check_layer_grads, torch_or_skip

# layer class, constructor kwargs, input shape
CONV_LAYERS = [
    pytest.param(Conv1D, dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding=1),
                 (2, 2, 9), id="conv1d-s2-p1"),
    pytest.param(Conv2D, dict(in_channels=4, out_channels=6, kernel_size=(3, 2), padding="same",
                              dilation=2, groups=2), (1, 4, 7, 6), id="conv2d-same-d2-g2"),
    pytest.param(Conv2D, dict(in_channels=3, out_channels=3, kernel_size=3, stride=(1, 2),
                              padding=((1, 0), (0, 2)), groups=3, bias=False), (2, 3, 6, 7),
                 id="conv2d-asym-depthwise-nobias"),
    pytest.param(Conv3D, dict(in_channels=2, out_channels=2, kernel_size=2, stride=2, padding=1),
                 (1, 2, 4, 5, 3), id="conv3d-s2-p1"),
]  # fmt: skip

TRANSPOSE_LAYERS = [
    pytest.param(ConvTranspose1D, dict(in_channels=2, out_channels=3, kernel_size=3, stride=2,
                                       padding=1, output_padding=1), (2, 2, 4), id="convT1d-op1"),
    pytest.param(ConvTranspose2D, dict(in_channels=4, out_channels=2, kernel_size=(2, 3),
                                       stride=(2, 1), groups=2, bias=False, dilation=(1, 2)),
                 (1, 4, 3, 4), id="convT2d-g2-d2-nobias"),
    pytest.param(ConvTranspose3D, dict(in_channels=2, out_channels=2, kernel_size=2, stride=2,
                                       padding=(0, 1, 0), groups=2), (1, 2, 2, 3, 2),
                 id="convT3d-depthwise"),
]  # fmt: skip

ALL_LAYERS = CONV_LAYERS + TRANSPOSE_LAYERS


def torch_module(torch, layer):
    """The equivalent torch.nn module with the layer's weights (padding done by F.pad)."""
    nn, cfg = torch.nn, layer.get_config()
    transposed = "output_padding" in cfg
    name = f"Conv{'Transpose' if transposed else ''}{layer.spatial_dims}d"
    kwargs = dict(stride=cfg["stride"], dilation=cfg["dilation"], groups=cfg["groups"])
    kwargs["bias"] = cfg["bias"]
    if transposed:
        kwargs.update(padding=cfg["padding"], output_padding=cfg["output_padding"])
    module = getattr(nn, name)(
        cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], **kwargs
    )
    module = module.to(torch.float64 if layer.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            module.bias.copy_(torch.from_numpy(layer.bias.data))
    return module


def torch_run(torch, layer, x, dy):
    module = torch_module(torch, layer)
    xt = torch.tensor(x, requires_grad=True)
    xin = xt
    if "output_padding" not in layer.get_config():
        pads = resolve_padding(
            layer.padding, x.shape[2:], layer.kernel_size, layer.stride, layer.dilation
        )
        xin = torch.nn.functional.pad(xt, [p for pair in reversed(pads) for p in pair])
    yt = module(xin)
    yt.backward(torch.tensor(dy))
    bias = module.bias.grad.numpy() if module.bias is not None else None
    return yt.detach().numpy(), xt.grad.numpy(), module.weight.grad.numpy(), bias


def run_layer(layer, x, dy):
    y = layer(x)
    dx = layer.backward(dy)
    bias = layer.bias.grad if layer.bias is not None else None
    return y, dx, layer.weight.grad, bias


@pytest.mark.parametrize(
    "dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("cls, kwargs, x_shape", ALL_LAYERS)
def test_layer_matches_torch(cls, kwargs, x_shape, dtype, tol):
    torch = torch_or_skip()
    layer = cls(**kwargs, rng=0, dtype=dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    dy = rng.standard_normal(layer.output_shape(x_shape)).astype(dtype)
    got, ref = run_layer(layer, x, dy), torch_run(torch, layer, x, dy)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        assert (a is None) == (e is None), name
        if e is not None:
            assert a.dtype == dtype, name
            assert_close(a, e, tol, name)


@pytest.mark.parametrize("cls, kwargs, x_shape", ALL_LAYERS)
def test_layer_gradcheck(cls, kwargs, x_shape):
    layer = cls(**kwargs, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal(x_shape)
    check_layer_grads(layer, x)


def test_layers_match_naive_loops():
    rng = np.random.default_rng(0)
    conv = Conv2D(4, 2, (2, 3), stride=(2, 1), padding=((1, 0), (0, 1)), groups=2, rng=0,
                  dtype=np.float64)  # fmt: skip
    x = rng.standard_normal((2, 4, 5, 4))
    y = conv(x)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    ref = naive_conv(x, conv.weight.data, conv.bias.data, (2, 1), conv.padding, (1, 1), 2, dy)
    for a, e in zip((y, dx, conv.weight.grad, conv.bias.grad), ref):
        assert_close(a, e, 1e-12)
    convt = ConvTranspose1D(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2, rng=0,
                            dtype=np.float64)  # fmt: skip
    x = rng.standard_normal((2, 2, 5))
    ref = naive_conv_transpose(x, convt.weight.data, convt.bias.data, (2,), (1,), (1,), (1,), 2)
    assert_close(convt(x), ref, 1e-12)


@pytest.mark.parametrize("cls, kwargs, x_shape", ALL_LAYERS)
def test_grads_accumulate_across_backward_calls(cls, kwargs, x_shape):
    layer = cls(**kwargs, rng=0)
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    dy = np.ones(layer(x).shape, dtype=np.float32)
    dx1 = layer.backward(dy)
    once = [p.grad.copy() for p in layer.parameters()]
    dx2 = layer.backward(dy)  # the cache survives backward: one forward, two backward passes
    np.testing.assert_array_equal(dx1, dx2)
    for p, g in zip(layer.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-6)
    layer.zero_grad()
    assert all(not p.grad.any() for p in layer.parameters())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cls, kwargs, x_shape", ALL_LAYERS)
def test_dtype_preserved(cls, kwargs, x_shape, dtype):
    layer = cls(**kwargs, rng=0, dtype=dtype)
    x = np.ones(x_shape, dtype=dtype)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == dtype
    assert all(p.data.dtype == p.grad.dtype == dtype for p in layer.parameters())


# --- init, config, repr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, shape, fan_in",
    [
        (Conv2D(6, 8, (3, 5), groups=2, rng=0), (8, 3, 3, 5), 3 * 15),
        (Conv1D(3, 4, 7, bias=False, rng=0), (4, 3, 7), 21),
        (ConvTranspose2D(4, 6, 3, groups=2, rng=0), (4, 3, 3, 3), 3 * 9),
        (ConvTranspose3D(2, 5, 2, rng=0), (2, 5, 2, 2, 2), 5 * 8),
    ],
    ids=["conv2d-g2", "conv1d-nobias", "convT2d-g2", "convT3d"],
)
def test_pytorch_default_init(layer, shape, fan_in):
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.shape == shape and layer.weight.dtype == np.float32
    params = layer.parameters()
    assert len(params) == (2 if layer.get_config()["bias"] else 1)
    for p in params:
        assert np.abs(p.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound  # uniform over the whole range
    np.testing.assert_array_equal(
        layer.weight.data, type(layer)(**layer.get_config(), rng=0).weight.data
    )


@pytest.mark.parametrize("cls, kwargs, x_shape", ALL_LAYERS)
def test_config_round_trip(cls, kwargs, x_shape):
    layer = cls(**kwargs, rng=0, dtype=np.float64)
    config = layer.get_config()
    assert next(iter(config)) == "in_channels" and config["dtype"] == "float64"
    rebuilt = cls.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.weight.shape == layer.weight.shape
    x = np.ones(x_shape)
    assert rebuilt(x).shape == layer(x).shape


def test_config_keys_follow_pytorch_order_and_repr():
    assert list(ConvTranspose2D(2, 2, 3).get_config()) == [
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding",
        "groups", "bias", "dilation", "dtype",
    ]  # fmt: skip
    assert repr(Conv2D(3, 8, 3, padding=((1, 1), (2, 2)))) == (
        "Conv2D(in_channels=3, out_channels=8, kernel_size=(3, 3), stride=(1, 1), "
        "padding=(1, 2), dilation=(1, 1), groups=1, bias=True, dtype='float32')"
    )
    assert Conv1D(1, 1, 3, padding=[(2, 1)]).padding == ((2, 1),)
    assert Conv3D(1, 1, 3, padding="same").padding == "same"


# --- errors ----------------------------------------------------------------------------------


def test_forward_input_errors():
    conv = Conv2D(3, 8, 3)
    with pytest.raises(ValueError, match=r"^Conv2D\(in_channels=3\): expected input of shape "
                       r"\(N, 3, H, W\)\. Received: \(8, 1, 28, 28\)\.$"):  # fmt: skip
        conv(np.zeros((8, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D\(in_channels=3\).*Received: \(3, 28, 28\)"):
        conv(np.zeros((3, 28, 28), np.float32))
    with pytest.raises(TypeError, match=r"Conv2D\(in_channels=3\).*Received dtype: int64"):
        conv(np.zeros((1, 3, 5, 5), np.int64))
    with pytest.raises(TypeError, match=r"Conv2D\(in_channels=3\).*Received: list"):
        conv([[0.0]])
    with pytest.raises(TypeError, match=r"Conv2D\(in_channels=3\): input dtype float64 does not "
                       r"match the weight dtype float32.*dtype=np.float64.*x.astype"):  # fmt: skip
        conv(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"ConvTranspose1D\(in_channels=2\).*\(N, 2, L\)"):
        ConvTranspose1D(2, 2, 3)(np.zeros((1, 3, 5), np.float32))


def test_kernel_larger_than_padded_input():
    conv = Conv3D(1, 1, (1, 3, 5), padding=1)
    with pytest.raises(ValueError, match=r"^Conv3D\(in_channels=1\): the kernel is larger than "
                       r"the padded input\. Received: input size \(4, 4, 2\)"):  # fmt: skip
        conv(np.zeros((1, 1, 4, 4, 2), np.float32))
    assert conv(np.zeros((1, 1, 4, 4, 3), np.float32)).shape == (1, 1, 6, 4, 1)
    with pytest.raises(ValueError, match=r"^ConvTranspose1D\(in_channels=1\): the output would be"):
        ConvTranspose1D(1, 1, 2, padding=2)(np.zeros((1, 1, 2), np.float32))


@pytest.mark.parametrize("cls, kwargs, x_shape", ALL_LAYERS)
def test_backward_errors(cls, kwargs, x_shape):
    layer = cls(**kwargs)
    label = rf"^{cls.__name__}\(in_channels={kwargs['in_channels']}\)"
    with pytest.raises(ValueError, match=label + r": backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((1,), np.float32))
    y = layer(np.zeros(x_shape, np.float32))
    with pytest.raises(ValueError, match=label + r": expected dy of shape"):
        layer.backward(np.zeros(y.shape[:-1], np.float32))
    with pytest.raises(TypeError, match=label + r": dy dtype float64 does not match"):
        layer.backward(np.zeros(y.shape))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Conv2D(3, 8, 3, groups=2), ValueError,
         r"^Conv2D\(in_channels=3\): groups must divide in_channels and out_channels\. "
         r"Received: groups=2, in_channels=3, out_channels=8\.$"),
        (lambda: Conv2D(4, 6, 3, groups=4), ValueError, "groups must divide"),
        (lambda: Conv1D(0, 2, 3), ValueError, r"Conv1D\(in_channels=0\): in_channels must be"),
        (lambda: Conv1D(True, 2, 3), TypeError, r"Conv1D\(in_channels=True\): in_channels"),
        (lambda: Conv1D(2, 2.0, 3), TypeError, "out_channels must be a positive int"),
        (lambda: Conv2D(2, 2, (3, 0)), ValueError, r"Conv2D.*kernel_size must be positive"),
        (lambda: Conv2D(2, 2, (3, 3, 3)), ValueError, r"Conv2D.*kernel_size must be an int or"),
        (lambda: Conv2D(2, 2, 3.0), TypeError, r"Conv2D.*kernel_size must be an int or"),
        (lambda: Conv3D(2, 2, 3, stride=0), ValueError, r"Conv3D.*stride must be positive"),
        (lambda: Conv1D(2, 2, 3, dilation=-1), ValueError, r"Conv1D.*dilation must be positive"),
        (lambda: Conv2D(2, 2, 3, groups=0), ValueError, r"Conv2D.*groups must be a positive"),
        (lambda: Conv2D(2, 2, 3, padding=-1), ValueError, r"Conv2D.*padding must be non-neg"),
        (lambda: Conv2D(2, 2, 3, padding=((1, -1), (0, 0))), ValueError, "non-negative"),
        (lambda: Conv2D(2, 2, 3, padding="full"), ValueError, r"Conv2D.*'valid' or 'same'"),
        (lambda: Conv2D(2, 2, 3, padding=(1, 2, 3)), ValueError, r"Conv2D.*padding must be"),
        (lambda: Conv2D(2, 2, 3, bias=1), TypeError, r"Conv2D.*bias must be True or False"),
        (lambda: Conv2D(2, 2, 3, dtype=np.int32), TypeError, r"Conv2D.*dtype must be a float"),
        (lambda: Conv2D(2, 2, 3, dtype="nope"), TypeError, r"Conv2D.*dtype must be a float"),
        (lambda: Conv2D(2, 2, 3, rng="seed"), TypeError, r"Conv2D.*rng must be"),
        (lambda: ConvND(2, 2, 3), TypeError, "ConvND has no number of spatial dims"),
        (lambda: ConvTranspose2D(2, 2, 3, stride=2, output_padding=2), ValueError,
         r"ConvTranspose2D\(in_channels=2\): output_padding must be smaller than stride or "
         r"dilation"),
        (lambda: ConvTranspose1D(2, 2, 3, padding="same"), ValueError,
         r"ConvTranspose1D.*'valid' and 'same' are for convolution"),
        (lambda: ConvTranspose1D(2, 2, 3, output_padding=-1), ValueError, "non-negative"),
        (lambda: ConvTranspose3D(4, 6, 3, groups=4), ValueError, r"ConvTranspose3D.*groups"),
    ],
)  # fmt: skip
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_sequential_backward_without_input_grad():
    """A training step needs no δ for its data: the same parameter grads, None returned."""
    from deltanet.layers import Dense, Flatten, MaxPool2D, ReLU, Sequential

    rng = np.random.default_rng(0)
    for first in (Conv2D(1, 3, 3, padding=1, rng=0), Flatten()):
        rest = (
            [ReLU(), MaxPool2D(2), Flatten(), Dense(48, 4, rng=1)]
            if isinstance(first, Conv2D)
            else [Dense(64, 4, rng=1), ReLU(), Dense(4, 2, rng=2)]
        )
        model = Sequential(first, *rest)
        x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
        dy = rng.standard_normal(model(x).shape).astype(np.float32)
        dx = model.backward(dy)
        grads = [p.grad.copy() for p in model.parameters()]
        model.zero_grad()
        model(x)
        assert dx.shape == x.shape and model.backward(dy, input_grad=False) is None
        for g, p in zip(grads, model.parameters(), strict=True):
            np.testing.assert_allclose(p.grad, g, rtol=1e-6, atol=1e-7)
