"""deltanet.jacobian.jacobian: finite differences, a closed-form loop, PyTorch, modes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.gradcheck import numerical_gradient
from deltanet.jacobian import jacobian
from tests.utils import torch_or_skip

F64 = {"dtype": np.float64}


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    return dn.Sequential(dn.Dense(4, 6, rng=rng, **F64), dn.Tanh(), dn.Dense(6, 3, rng=rng, **F64))


def _finite_differences(model, x):
    """J[n, out, in] one output unit and one input at a time, with numerical_gradient."""
    n = x.shape[0]
    out_size = int(np.prod(model(x).shape[1:]))
    jac = np.zeros((n, out_size, *x.shape[1:]))
    for j in range(out_size):
        jac[:, j] = numerical_gradient(lambda j=j: model(x).reshape(n, -1)[:, j].sum(), x)
    return jac.reshape(n, *model(x).shape[1:], *x.shape[1:])


def test_mlp_matches_closed_form_loop():
    """y = W2 tanh(W1 x + b1) + b2, so J = W2 diag(1 - h²) W1, written as loops per example."""
    model = _mlp()
    x = np.random.default_rng(1).standard_normal((3, 4))
    w1, b1, w2 = model[0].weight.data, model[0].bias.data, model[2].weight.data
    expected = np.zeros((3, 3, 4))
    for n in range(3):
        h = np.tanh(w1 @ x[n] + b1)
        for j in range(3):
            for i in range(4):
                expected[n, j, i] = sum(w2[j, k] * (1 - h[k] ** 2) * w1[k, i] for k in range(6))
    np.testing.assert_allclose(jacobian(model, x), expected, rtol=1e-12, atol=1e-14)


def test_conv_model_matches_finite_differences():
    rng = np.random.default_rng(2)
    model = dn.Sequential(
        dn.Conv2D(2, 3, 3, padding=1, rng=rng, **F64),
        dn.Sigmoid(),
        dn.AvgPool2D(2),  # output (N, 3, 2, 2): a Jacobian with spatial output axes
    )
    x = rng.standard_normal((2, 2, 4, 4))
    jac = jacobian(model, x)
    assert jac.shape == (2, 3, 2, 2, 2, 4, 4)
    np.testing.assert_allclose(jac, _finite_differences(model, x), rtol=1e-6, atol=1e-9)


def test_examples_do_not_mix():
    """Row n of the batch Jacobian is the Jacobian of example n alone."""
    model, x = _mlp(), np.random.default_rng(3).standard_normal((4, 4))
    batch = jacobian(model, x)
    for n in range(4):
        np.testing.assert_allclose(batch[n], jacobian(model, x[n : n + 1])[0], rtol=1e-13)


def test_torch_parity():
    torch = torch_or_skip()
    model, x = _mlp(4), np.random.default_rng(4).standard_normal((2, 4))
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    net = net.double()
    with torch.no_grad():
        for i in (0, 2):
            net[i].weight.copy_(torch.from_numpy(model[i].weight.data))
            net[i].bias.copy_(torch.from_numpy(model[i].bias.data))
    for n in range(2):
        expected = torch.autograd.functional.jacobian(net, torch.from_numpy(x[n]))
        np.testing.assert_allclose(jacobian(model, x)[n], expected.numpy(), rtol=1e-12)


def test_grads_mode_and_dtype_are_kept():
    rng = np.random.default_rng(5)
    model = dn.Sequential(dn.Dense(4, 5, rng=rng), dn.Dropout(0.5), dn.Dense(5, 2, rng=rng))
    model.train()
    model[0].weight.grad[...] = 7.0
    x = rng.standard_normal((3, 4)).astype(np.float32)
    jac = jacobian(model, x)
    assert jac.dtype == np.float32 and jac.shape == (3, 2, 4)
    # eval mode: dropout is the identity, so J = W2 W1 for every example
    w = model[2].weight.data @ model[0].weight.data
    np.testing.assert_allclose(jac, np.broadcast_to(w, (3, 2, 4)), rtol=1e-5)
    assert all(layer.training for layer in model)
    assert np.all(model[0].weight.grad == 7.0) and np.all(model[2].weight.grad == 0.0)


@pytest.mark.parametrize(
    "model, x, error, match",
    [
        ("not a layer", np.zeros((1, 4)), TypeError, "model must be a deltanet Layer"),
        (None, np.zeros((1, 4), dtype=np.int64), TypeError, "floating-point numpy array"),
        (None, [[0.0] * 4], TypeError, "floating-point numpy array"),
        (None, np.zeros((0, 4)), ValueError, "at least one example"),
    ],
)
def test_bad_input_is_named(model, x, error, match):
    with pytest.raises(error, match=match) as info:
        jacobian(_mlp() if model is None else model, x)
    assert "jacobian" in str(info.value)


def test_wrong_shape_reaches_the_layer_error():
    with pytest.raises(ValueError, match=r"Dense\(in_features=4\)"):
        jacobian(_mlp(), np.zeros((2, 5)))
