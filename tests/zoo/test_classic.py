"""The model zoo (every model): output shapes, parameter counts, seeding and argument validation."""

import numpy as np
import pytest

from deltanet.layers import Dense, Sequential, Sigmoid
from deltanet.zoo import MODELS, build_model, default_input_shape

PARAMS = {
    "digits_cnn": 320 + 18_496 + 131_200 + 1_290,
    "lenet5": 61_706,
    "mlp": 400 * 25 + 25 + 25 * 10 + 10,
    "cnn1d": 192 + 10_304 + 82_048 + 1_290,
    "cnn3d": 224 + 3_472 + 65_600 + 650,
    "binary_lenet": 640 + 128 + 36_864 + 128 + 73_728 + 256 + 131_072 + 512 + 2_570,
    "resnet1d": 241_258,
    "resnet20": 272_474,  # 269,722 with He et al.'s parameter-free shortcuts ("option A")
    "bireal_resnet1d": 241_258,  # the float twin's count: same convs, batch norms, shortcuts
    "bireal_resnet20": 272_474,
}


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_parameter_count(name):
    model = build_model(name)
    assert isinstance(model, Sequential)
    assert model.num_parameters() == PARAMS[name]
    x = np.random.default_rng(0).standard_normal((3, *default_input_shape(name)))
    y = model(x.astype(np.float32))
    assert y.shape == (3, 10) and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape


def test_lenet5_has_61706_parameters():
    assert build_model("lenet5").num_parameters() == 61_706


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("digits_cnn", (3, 10, 6), 4),
        ("lenet5", (1, 32, 32), 7),
        ("mlp", (1, 8, 8), 3),
        ("cnn1d", (2, 37), 5),
        ("cnn3d", (1, 8, 12, 8), 2),
        ("binary_lenet", (1, 28, 28), 7),
    ],
)
def test_models_follow_input_shape_and_classes(name, shape, classes):
    model = build_model(name, input_shape=shape, num_classes=classes)
    assert model(np.zeros((2, *shape), np.float32)).shape == (2, classes)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (build_model("digits_cnn", seed=s) for s in (3, 3, 4))
    for (_, pa), (_, pb), (_, pc) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters()
    ):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert not np.array_equal(pa.data, pc.data)


def test_pytorch_default_init_bounds():
    model = build_model("lenet5", seed=0)
    w = model[0].weight.data  # fan_in = 1 * 5 * 5
    assert np.abs(w).max() <= 1 / 5 and np.abs(w).max() > 0.15


def test_mlp_options():
    model = build_model("mlp", input_shape=(64,), hidden=(30, 20), activation="relu")
    dense = [layer for layer in model if isinstance(layer, Dense)]
    assert [d.weight.shape for d in dense] == [(30, 64), (20, 30), (10, 20)]
    classic = build_model("mlp")
    assert any(isinstance(layer, Sigmoid) for layer in classic)


def test_digits_cnn_dropout_option():
    model = build_model("digits_cnn", dropout=0.5)
    assert "Dropout" in repr(model)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "resnet"}, ValueError, "Valid models: digits_cnn, lenet5, mlp, cnn1d, cnn3d"),
        ({"name": "lenet5", "input_shape": (1, 8, 8)}, ValueError, "at least 12"),
        ({"name": "cnn1d", "input_shape": (1, 8, 8)}, ValueError, r"\(C, L\)"),
        ({"name": "cnn3d", "input_shape": (1, 8, 8)}, ValueError, r"\(C, D, H, W\)"),
        ({"name": "digits_cnn", "input_shape": (1, 8)}, ValueError, r"\(C, H, W\)"),
        ({"name": "digits_cnn", "input_shape": "8x8"}, TypeError, "tuple of ints"),
        ({"name": "mlp", "num_classes": 0}, ValueError, "num_classes"),
        ({"name": "mlp", "num_classes": 2.5}, TypeError, "num_classes"),
        ({"name": "mlp", "depth": 3}, ValueError, "Valid options: hidden, activation"),
        ({"name": "mlp", "activation": "gelu"}, ValueError, "relu, sigmoid, tanh"),
        ({"name": "mlp", "hidden": (0,)}, ValueError, "hidden"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_model(**kwargs)
