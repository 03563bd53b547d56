"""gradcheck on the classic 3-5-3 debug network, on ops, and catching a wrong gradient."""

import numpy as np
import pytest

from deltanet.gradcheck import gradcheck, numerical_gradient, relative_difference
from deltanet.layers.activations import Sigmoid
from deltanet.layers.containers import Sequential
from deltanet.layers.dense import Dense
from deltanet.ops.dense import dense_backward, dense_forward
from deltanet.ops.losses import sigmoid_cross_entropy


def debug_weights(fan_out: int, fan_in: int) -> np.ndarray:
    """The exercise's debugInitializeWeights: sin(1..n)/10 laid out in column-major order."""
    n = fan_out * (1 + fan_in)
    return (np.sin(np.arange(1, n + 1)) / 10).reshape((fan_out, 1 + fan_in), order="F")


def debug_network():
    """3 inputs, 5 sigmoid hidden units, 3 sigmoid outputs, 5 examples, lambda = 3."""
    theta1, theta2 = debug_weights(5, 3), debug_weights(3, 5)
    model = Sequential(Dense(3, 5, dtype=np.float64), Sigmoid(), Dense(5, 3, dtype=np.float64))
    for dense, theta in ((model[0], theta1), (model[2], theta2)):
        dense.bias.data[...] = theta[:, 0]  # column 0 is the bias unit's weights
        dense.weight.data[...] = theta[:, 1:]
    x = debug_weights(5, 2)  # X = debugInitializeWeights(m, input_layer_size - 1)
    labels = np.arange(1, 6) % 3  # y = 1 + mod(1:m, num_labels), here 0-based
    return model, x, np.eye(3)[labels]


def test_classic_353_debug_network_relative_difference_below_1e9():
    # As the exercise's checkNNGradients: the parameters, e = 1e-4, lambda = 3.
    model, x, y = debug_network()
    report = gradcheck(
        model, x, target_values=y, loss=sigmoid_cross_entropy, l2=3.0, eps=1e-4,
        check_inputs=False, tol=1e-9,
    )  # fmt: skip
    assert report.ok, str(report)
    names = [r.name for r in report.rows]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "all parameters"]
    assert report.rows[-1].rel_diff < 1e-10  # the exercise reports about 2e-11
    assert "OK" in str(report)


def test_353_input_gradient_too():
    model, x, y = debug_network()
    report = gradcheck(model, x, target_values=y, loss=sigmoid_cross_entropy, l2=3.0, eps=1e-4)
    assert report.rows[0].name == "input" and report.rows[0].rel_diff < 1e-7, str(report)


def test_classic_cost_value_with_regularisation():
    # J = (1/m) sum_i sum_k CE + lambda/(2m) * sum of squared non-bias weights.
    model, x, y = debug_network()
    h = 1 / (1 + np.exp(-model(x)))
    ce = -np.sum(y * np.log(h) + (1 - y) * np.log(1 - h)) / 5
    reg = 3.0 / 10 * (np.sum(model[0].weight.data ** 2) + np.sum(model[2].weight.data ** 2))
    value, _ = sigmoid_cross_entropy(model(x), y)
    assert abs(value - ce) < 1e-12
    assert reg > 0


def test_gradcheck_catches_a_wrong_backward():
    def bad_backward(dy, cache):
        dx, dw, db = dense_backward(dy, cache)
        return dx, dw * 1.01, db  # a 1% error in the weight gradient

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    good = gradcheck((dense_forward, dense_backward), x, w, b)
    bad = gradcheck((dense_forward, bad_backward), x, w, b)
    assert good.ok and good.max_rel_diff < 1e-8
    assert not bad.ok and bad.rows[1].rel_diff > 1e-3 and bad.rows[0].rel_diff < 1e-8
    assert "FAILED" in str(bad)


def test_directional_mode_agrees():
    model, x, y = debug_network()
    report = gradcheck(
        model, x, target_values=y, loss=sigmoid_cross_entropy, directional=True, eps=1e-4, tol=1e-6
    )
    assert report.directional and report.ok, str(report)
    wrong = Sequential(Dense(3, 5, dtype=np.float64, rng=0))
    orig = wrong[0].backward

    def broken(dy, **kwargs):
        dx = orig(dy, **kwargs)
        wrong[0].weight.grad *= 2
        return dx

    wrong[0].backward = broken
    assert not gradcheck(wrong, x, directional=True).ok


def test_layer_without_loss_checks_input_and_parameters():
    layer = Dense(4, 3, rng=1)  # float32 parameters are checked in float64
    report = gradcheck(layer, np.random.default_rng(2).standard_normal((5, 4)))
    assert report.ok and report.rows[-1].name == "all parameters"
    assert layer.weight.data.dtype == np.float64


def test_numerical_gradient_of_a_quadratic():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda: float(np.sum(x**2)), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])  # restored
    assert relative_difference(np.zeros(2), np.zeros(2)) == 0.0


def test_gradcheck_rejects_bad_targets():
    with pytest.raises(TypeError, match="gradcheck"):
        gradcheck("not a layer", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one input"):
        gradcheck(Dense(2, 2), np.zeros((2, 2)), np.zeros((2, 2)))
