"""Flatten and Reshape layers: naive index maps, round trips, PyTorch parity, errors, config."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from deltanet.layers.reshape import Flatten, Reshape
from deltanet.ops.reshape import flatten_backward, flatten_forward, reshape_forward
from tests.utils import check_grads, torch_or_skip


def test_flatten_matches_naive_index_map():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = Flatten()(x)
    assert y.shape == (2, 60)
    for n, c, h, w in itertools.product(*map(range, x.shape)):
        assert y[n, (c * 4 + h) * 5 + w] == x[n, c, h, w]  # C order: last axis fastest


@pytest.mark.parametrize(
    "shape, start, end, out",
    [
        ((2, 3, 4, 5), 1, -1, (2, 60)),
        ((2, 3, 4, 5), 0, -1, (120,)),
        ((2, 3, 4, 5), 2, 3, (2, 3, 20)),
        ((2, 3, 4, 5), -3, -2, (2, 12, 5)),
        ((2, 3, 4, 5), 1, 1, (2, 3, 4, 5)),
        ((0, 3, 4), 1, -1, (0, 12)),
    ],
)
def test_flatten_shapes_round_trip_and_torch(shape, start, end, out):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    layer = Flatten(start, end)
    y = layer(x)
    assert y.shape == out and y.dtype == np.float32
    dx = layer.backward(y * 2)
    assert dx.shape == shape and dx.dtype == np.float32
    np.testing.assert_array_equal(dx, x * 2)
    torch = torch_or_skip()
    np.testing.assert_array_equal(y, torch.nn.Flatten(start, end)(torch.tensor(x)).numpy())


@pytest.mark.parametrize(
    "shape, target, out",
    [
        ((2, 12), (3, 4), (2, 3, 4)),
        ((2, 3, 4), (-1,), (2, 12)),
        ((2, 3, 4), (2, -1, 3), (2, 2, 2, 3)),
        ((0, 3, 4), (-1, 2), (0, 6, 2)),
    ],
)
def test_reshape_shapes_round_trip_and_torch(shape, target, out):
    x = np.random.default_rng(2).standard_normal(shape)
    layer = Reshape(target)
    y = layer(x)
    assert y.shape == out
    np.testing.assert_array_equal(layer.backward(y), x)
    torch = torch_or_skip()
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.reshape(out)  # torch cannot infer -1 for an empty batch; deltanet can
    dy = np.random.default_rng(3).standard_normal(out)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(layer.backward(dy), xt.grad.numpy())


def test_reshape_naive_index_map():
    x = np.random.default_rng(4).standard_normal((2, 6))
    y, _ = reshape_forward(x, (2, 3))
    for n, i, j in itertools.product(range(2), range(2), range(3)):
        assert y[n, i, j] == x[n, i * 3 + j]


def test_gradient_central_differences():
    x = np.random.default_rng(5).standard_normal((2, 3, 2))

    def forward(dy):
        y, cache = flatten_forward(x)
        return y, None if dy is None else flatten_backward(dy, cache)

    check_grads(forward, [x])


def test_flatten_then_reshape_restores():
    x = np.random.default_rng(6).standard_normal((3, 2, 4, 4)).astype(np.float32)
    y = Reshape((2, 4, 4))(Flatten()(x))
    np.testing.assert_array_equal(y, x)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=2\): flatten dims out of range"):
        Flatten(2)(np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=2\): .*start_dim=2, end_dim=1"):
        Flatten(2, 1)(np.zeros((4, 5, 6)))
    with pytest.raises(TypeError, match=r"Flatten\(start_dim=1\): .*Received dtype: int"):
        Flatten()(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"Reshape\(shape=\[5\]\): cannot reshape a sample of "):
        Reshape((5,))(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Reshape\(shape=\[5, -1\]\): cannot reshape"):
        Reshape((5, -1))(np.zeros((2, 12)))
    for layer in (Flatten(), Reshape((3,))):
        with pytest.raises(ValueError, match=r"backward\(\) called before forward\(\)"):
            layer.backward(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Flatten(1.5), TypeError, r"Flatten: start_dim must be an int\. Received: "),
        (lambda: Flatten(1, True), TypeError, r"Flatten: end_dim must be an int"),
        (lambda: Reshape(5), TypeError, r"Reshape: shape must be a tuple of ints\. Received: "),
        (lambda: Reshape((2.0, 3)), TypeError, r"Reshape: shape must be a tuple of ints"),
        (lambda: Reshape((-1, -1)), ValueError, r"Reshape: .*at most one -1\. Received"),
        (lambda: Reshape((0, 3)), ValueError, r"Reshape: shape must hold positive ints"),
    ],
)
def test_bad_constructor_args(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer", [Flatten(), Flatten(0, 2), Reshape((4, -1)), Reshape([2, 6])])
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == layer.get_config()
    x = np.zeros((2, 2, 3, 2), np.float32)
    assert rebuilt.output_shape(x.shape) == layer(x).shape
