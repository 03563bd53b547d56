"""Pooling layers: PyTorch modules, naive loops, gradients, validation, config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deltanet.layers.pool import (
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    AvgPoolND,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    MaxPoolND,
)
from tests.ops.test_pool import distinct, naive_avg_pool, naive_global, naive_max_pool
from tests.utils import check_grads, torch_or_skip

MAX = {1: MaxPool1D, 2: MaxPool2D, 3: MaxPool3D}
AVG = {1: AvgPool1D, 2: AvgPool2D, 3: AvgPool3D}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 5)}

# (nd, kwargs): overlapping windows, padding, dilation, ceil_mode, count_include_pad
MAX_CASES = [
    (1, dict(kernel_size=3, stride=1, padding=1)),
    (1, dict(kernel_size=2, stride=3, padding=1, dilation=2, ceil_mode=True)),
    (2, dict(kernel_size=2)),
    (2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), ceil_mode=True)),
    (3, dict(kernel_size=2, stride=1, padding=1)),
    (3, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
]
AVG_CASES = [
    (1, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (1, dict(kernel_size=2, stride=1, count_include_pad=False)),
    (2, dict(kernel_size=2)),
    (2, dict(kernel_size=3, stride=(2, 3), padding=1, ceil_mode=True, count_include_pad=False)),
    (3, dict(kernel_size=2, stride=1, padding=1, count_include_pad=False)),
    (3, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
]


def torch_module(torch, layer):
    """The PyTorch module that ``layer`` mirrors, built from ``layer.get_config()``."""
    nd, config = layer.spatial_dims, layer.get_config()
    kind = "MaxPool" if isinstance(layer, MaxPoolND) else "AvgPool"
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return getattr(torch.nn, f"{kind}{nd}d")(**config)


def run_layer(layer, x, dy):
    y = layer(x)
    return y, layer.backward(dy)


def check_layer(layer, x, naive):
    """Forward and dx against the naive loops and the PyTorch module, in x's dtype."""
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    assert y.dtype == x.dtype and dx.dtype == x.dtype and dx.shape == x.shape
    assert layer.parameters() == [] and layer.output_shape(x.shape) == y.shape
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_module(torch, layer)(tx)
    ty.backward(torch.tensor(dy))
    tol = 1e-10 if x.dtype == np.float64 else 1e-4
    refs = [(ty.detach().numpy(), tx.grad.numpy())]
    if x.dtype == np.float64:
        refs.append(naive(x, dy))
    for y_ref, dx_ref in refs:
        np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol)


def knobs(nd, kwargs, defaults):
    """``(k, s, p, ...)`` tuples of a config, for the naive references."""
    full = {**defaults, **kwargs}
    full.setdefault("stride", full["kernel_size"])
    return {
        k: (v if isinstance(v, tuple) else (v,) * nd) if not isinstance(v, bool) else v
        for k, v in full.items()
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd,kwargs", MAX_CASES)
def test_max_pool_layer(nd, kwargs, dtype):
    layer = MAX[nd](**kwargs)
    x = distinct((2, 3, *SPATIAL[nd]), dtype=dtype)
    c = knobs(nd, kwargs, dict(padding=0, dilation=1, ceil_mode=False))
    args = (c["kernel_size"], c["stride"], c["padding"], c["dilation"], c["ceil_mode"])
    check_layer(layer, x, lambda x, dy: naive_max_pool(x, dy, *args))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd,kwargs", AVG_CASES)
def test_avg_pool_layer(nd, kwargs, dtype):
    layer = AVG[nd](**kwargs)
    x = np.random.default_rng(0).standard_normal((1, 2, *SPATIAL[nd])).astype(dtype)
    c = knobs(nd, kwargs, dict(padding=0, ceil_mode=False, count_include_pad=True))
    args = (c["kernel_size"], c["stride"], c["padding"], c["ceil_mode"], c["count_include_pad"])
    check_layer(layer, x, lambda x, dy: naive_avg_pool(x, dy, *args))


@pytest.mark.parametrize(
    "layer", [MaxPool2D(2, 1, 1), AvgPool1D(3, 2, 1, ceil_mode=True), GlobalMaxPool()], ids=repr
)
def test_pool_layer_gradcheck(layer):
    x = distinct((2, 2, 5, 4) if not isinstance(layer, AvgPool1D) else (2, 2, 7), seed=3)

    def forward(r):
        y = layer(x)
        return y, (None if r is None else [layer.backward(r)])

    check_grads(forward, [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 2, 5, 6), (2, 2, 3, 4, 5)])
@pytest.mark.parametrize("cls,kind", [(GlobalAvgPool, "avg"), (GlobalMaxPool, "max")])
def test_global_pool_layers(cls, kind, shape, dtype):
    torch = torch_or_skip()
    layer = cls()
    x = distinct(shape, dtype=dtype)
    dy = np.random.default_rng(2).standard_normal(shape[:2] + (1,) * (len(shape) - 2))
    y, dx = run_layer(layer, x, dy.astype(dtype))
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == dy.shape
    nd = len(shape) - 2
    module = getattr(torch.nn, f"Adaptive{kind.capitalize()}Pool{nd}d")(1)
    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)
    ty.backward(torch.tensor(dy.astype(dtype)))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    refs = [(ty.detach().numpy(), tx.grad.numpy()), naive_global(x, dy.astype(dtype), kind)]
    for y_ref, dx_ref in refs:
        np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol)


def test_global_pool_accepts_any_rank_from_3():
    x = distinct((2, 3, 2, 2, 2, 2))
    assert GlobalAvgPool()(x).shape == (2, 3, 1, 1, 1, 1)
    assert GlobalMaxPool()(x).shape == (2, 3, 1, 1, 1, 1)


def test_max_pool_layer_ties_go_to_first_like_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(4).integers(0, 2, (2, 2, 6, 5)).astype(np.float64)
    layer = MaxPool2D(3, stride=1, padding=1)
    y, dx = run_layer(layer, x, np.ones_like(layer(x)))
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.MaxPool2d(3, stride=1, padding=1)(tx).sum().backward()
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    assert dx.sum() == y.size  # every window passes its δ on exactly once


def test_max_pool_in_eval_mode_keeps_no_argmax_but_still_backpropagates():
    """Inference skips the argmax; a backward pass in eval mode (a saliency map) finds it."""
    x = np.random.default_rng(6).integers(0, 3, (2, 3, 6, 7)).astype(np.float32)
    layer = MaxPool2D(3, stride=2, padding=1)
    dy = np.random.default_rng(7).standard_normal(layer(x).shape).astype(np.float32)
    y_train, dx_train = layer(x), layer.backward(dy)
    layer.eval()
    y_eval = layer(x)
    assert _argmax(layer._cache) is None  # no argmax was computed
    np.testing.assert_array_equal(y_eval, y_train)
    np.testing.assert_array_equal(layer.backward(dy), dx_train)
    np.testing.assert_array_equal(layer.backward(dy), dx_train)  # argmax found once, kept
    assert _argmax(layer._cache) is not None


def _argmax(cache):
    """The argmax a max-pooling cache holds (None until a backward pass needs it)."""
    return cache.argmax


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer,x,err,match",
    [
        (MaxPool2D(2), np.zeros((2, 3, 4)), ValueError, r"MaxPool2D\(kernel_size=\[2, 2\]\): "
         r"expected input of shape \(N, C, H, W\). Received: \(2, 3, 4\)"),
        (AvgPool1D(2), np.zeros((2, 3, 4, 4)), ValueError, r"AvgPool1D.*\(N, C, L\)"),
        (MaxPool3D(2), np.zeros((1, 1, 4, 4)), ValueError, r"MaxPool3D.*\(N, C, D, H, W\)"),
        (MaxPool1D(2), np.zeros((1, 1, 4), dtype=np.int64), TypeError, r"MaxPool1D.*int64"),
        (AvgPool2D(2), [[1.0]], TypeError, r"AvgPool2D.*Received: list"),
        (GlobalAvgPool(), np.zeros((2, 3)), ValueError, r"GlobalAvgPool\(\).*Received: \(2, 3\)"),
        (GlobalMaxPool(), np.zeros((2, 3, 4), np.int32), TypeError, r"GlobalMaxPool\(\).*int32"),
        (MaxPool2D(5, padding=1), np.zeros((1, 1, 2, 9)), ValueError,
         r"MaxPool2D\(kernel_size=\[5, 5\]\): kernel_size=\(5, 5\).*larger than the padded "
         r"input \(4, 11\). Received input of size \(2, 9\) with padding=\(1, 1\)"),
        (MaxPool1D(3, dilation=3), np.zeros((1, 1, 6)), ValueError, r"MaxPool1D.*dilation=\(3,\)"),
        (AvgPool3D(3), np.zeros((1, 1, 3, 3, 2)), ValueError, r"AvgPool3D.*larger"),
    ],
)  # fmt: skip
def test_bad_input(layer, x, err, match):
    with pytest.raises(err, match=match):
        layer(x)


@pytest.mark.parametrize("layer", [MaxPool2D(2), AvgPool3D(2), GlobalAvgPool(), GlobalMaxPool()])
def test_backward_errors(layer):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*before forward"):
        layer.backward(np.zeros((1, 1, 1, 1)))
    y = layer(np.zeros((1, 2, 4, 4, 4) if isinstance(layer, AvgPool3D) else (1, 2, 4, 4)))
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*expected dy of shape"):
        layer.backward(np.zeros(y.shape + (1,)))


@pytest.mark.parametrize(
    "make,err,match",
    [
        (lambda: MaxPool2D(0), ValueError, r"MaxPool2D: kernel_size must be positive. Received: 0"),
        (lambda: AvgPool1D(2, stride=0), ValueError, r"AvgPool1D: stride must be positive"),
        (lambda: MaxPool1D(2, padding=-1), ValueError, r"MaxPool1D: padding must be non-negative"),
        (lambda: MaxPool2D(3, padding=2), ValueError, r"MaxPool2D: padding must be at most half"),
        (lambda: MaxPool3D(2, dilation=0), ValueError, r"MaxPool3D: dilation must be positive"),
        (lambda: MaxPool2D((2, 2, 2)), ValueError, r"MaxPool2D: kernel_size must be .* 2 ints"),
        (lambda: AvgPool2D(2.5), TypeError, r"AvgPool2D: kernel_size must be an int"),
        (lambda: MaxPool2D(True), TypeError, r"MaxPool2D: kernel_size .* Received: True"),
        (lambda: MaxPool2D(2, ceil_mode=1), TypeError, r"MaxPool2D: ceil_mode must be True"),
        (lambda: AvgPool2D(2, count_include_pad="no"), TypeError, r"AvgPool2D: count_include"),
        (lambda: MaxPoolND(2), ValueError, r"MaxPoolND: spatial_dims must be 1, 2 or 3"),
        (lambda: AvgPoolND(2, spatial_dims=4), ValueError, r"AvgPoolND: spatial_dims .* 4"),
        (lambda: MaxPool2D(2, spatial_dims=3), ValueError, r"MaxPool2D: spatial_dims is fixed"),
    ],
)
def test_bad_constructor_args(make, err, match):
    with pytest.raises(err, match=match):
        make()


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        MaxPool1D(3, 2, 1, 2, True),
        MaxPool2D((3, 2), padding=(1, 0)),
        MaxPool3D(2),
        AvgPool1D(2),
        AvgPool2D(3, 1, 1, ceil_mode=True, count_include_pad=False),
        AvgPool3D((2, 3, 2)),
        MaxPoolND(2, spatial_dims=3),
        AvgPoolND(3, 2, 1, spatial_dims=1),
        GlobalAvgPool(),
        GlobalMaxPool(),
    ],
    ids=repr,
)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert clone.get_config() == layer.get_config()
    if config:
        assert next(iter(config)) == "kernel_size"
        assert layer.label().startswith(f"{type(layer).__name__}(kernel_size=")
    x = distinct((1, 2, *SPATIAL[getattr(layer, "spatial_dims", 2)]))
    np.testing.assert_array_equal(layer(x), clone(x))


def test_nd_layer_equals_fixed_dims_layer():
    x = distinct((2, 2, 7, 6))
    np.testing.assert_array_equal(MaxPoolND(3, 2, 1, spatial_dims=2)(x), MaxPool2D(3, 2, 1)(x))
    np.testing.assert_array_equal(AvgPoolND(2, spatial_dims=2)(x), AvgPool2D(2)(x))
