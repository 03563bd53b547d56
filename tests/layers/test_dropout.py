"""Dropout layer: training vs eval, seeded determinism, gradients, dtypes, errors, config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deltanet.layers.dropout import Dropout
from tests.utils import check_grads, torch_or_skip


def test_training_drops_and_scales():
    layer = Dropout(0.25, rng=0)
    x = np.ones((100, 400), np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    assert abs((y != 0).mean() - 0.75) < 0.01
    np.testing.assert_array_equal(np.unique(y), [0, np.float32(1) / np.float32(0.75)])


def test_eval_is_identity_forward_and_backward():
    layer = Dropout(0.5, rng=0).eval()
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    assert layer(x) is x
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_p_zero_is_identity_in_training():
    x = np.random.default_rng(2).standard_normal((3, 5))
    np.testing.assert_array_equal(Dropout(0.0)(x), x)


def test_deterministic_given_seed_and_fresh_masks_per_call():
    x = np.ones((20, 30))
    a, b = Dropout(0.5, rng=7), Dropout(0.5, rng=7)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    assert not np.array_equal(first, a(x))  # the layer's Generator moves on
    np.testing.assert_array_equal(Dropout(0.5, rng=np.random.default_rng(7))(x), first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_is_mask_times_scale(dtype):
    layer = Dropout(0.3, rng=3)
    rng = np.random.default_rng(4)
    x = rng.uniform(1, 2, (5, 2, 3)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = layer(x)
    dx = layer.backward(dy)
    assert dx.dtype == dtype
    mask = (y != 0).astype(dtype) * (dtype(1) / dtype(0.7))
    np.testing.assert_array_equal(dx, dy * mask)


def test_gradient_central_differences():
    x = np.random.default_rng(5).standard_normal((3, 4))

    def forward(dy):
        layer = Dropout(0.5, rng=11)  # a fresh seeded layer: the same mask on every call
        y = layer(x)
        return y, None if dy is None else [layer.backward(dy)]

    check_grads(forward, [x])


def test_eval_matches_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(6).standard_normal((4, 3))
    theirs = torch.nn.Dropout(0.4).eval()(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(Dropout(0.4).eval()(x), theirs)


@pytest.mark.parametrize(
    "p, error", [(-0.1, ValueError), (1.0, ValueError), (True, TypeError), ("0.5", TypeError)]
)
def test_bad_p(p, error):
    with pytest.raises(error, match=rf"Dropout: p must be .*Received: p={p!r}"):
        Dropout(p)


def test_bad_input_and_backward_before_forward():
    layer = Dropout(0.5)
    with pytest.raises(TypeError, match=r"Dropout\(p=0\.5\): .*Received dtype: int"):
        layer(np.zeros((2, 3), np.int32))
    with pytest.raises(TypeError, match=r"Dropout\(p=0\.5\): .*Received: list"):
        layer([1.0, 2.0])
    with pytest.raises(ValueError, match=r"Dropout\(p=0\.5\): backward\(\) called before"):
        layer.backward(np.zeros((2, 3)))


def test_config_round_trip():
    layer = Dropout(0.2, rng=1)
    config = json.loads(json.dumps(layer.get_config()))
    assert config == {"p": 0.2}
    assert Dropout.from_config(config).get_config() == config
    assert layer.parameters() == [] and layer.output_shape((2, 5)) == (2, 5)
