"""Forks: Residual, Add, Concat and Identity. δ sums where one input feeds several branches."""

import numpy as np
import pytest

import deltanet as dn
from deltanet.gradcheck import gradcheck
from deltanet.layers.registry import layer_from_dict, layer_to_dict
from tests.utils import torch_or_skip

F64 = np.float64


def conv_block(c_in, c_out, stride=1, seed=0):
    return dn.Sequential(
        # no bias before a batch norm: its gradient is exactly zero (the mean is subtracted)
        dn.Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=False, rng=seed, dtype=F64),
        dn.BatchNorm2D(c_out, dtype=F64),
        dn.Tanh(),
        dn.Conv2D(c_out, c_out, 3, padding=1, rng=seed + 1, dtype=F64),
    )


def x64(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_residual_identity_adds_the_input_and_delta_sums_over_both_paths():
    block = dn.Sequential(dn.Dense(4, 4, rng=0, dtype=F64), dn.Tanh())
    res = dn.Residual(block)
    x = x64(3, 4)
    y = res(x)
    np.testing.assert_allclose(y, block(x) + x)
    dy = x64(3, 4, seed=1)
    block(x)
    expected = block.backward(dy) + dy  # the fork rule: δx = δ through the block + δ itself
    res(x)
    res.zero_grad()
    np.testing.assert_allclose(res.backward(dy), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "model",
    [
        dn.Residual(conv_block(2, 2)),
        dn.Residual(
            conv_block(2, 3, stride=2, seed=4),
            dn.Conv2D(2, 3, 1, stride=2, rng=9, dtype=F64),
        ),
        dn.Add(
            conv_block(2, 3, seed=1),
            dn.Conv2D(2, 3, 1, rng=2, dtype=F64),
            dn.Conv2D(2, 3, 3, padding=1, rng=3, dtype=F64),
        ),
        dn.Concat(conv_block(2, 3, seed=5), dn.Identity(), dn.MaxPool2D(3, 1, padding=1)),
        dn.Sequential(
            dn.Residual(conv_block(2, 2)), dn.Concat(dn.Identity(), dn.Tanh()), dn.Flatten()
        ),
    ],
    ids=["residual-identity", "residual-projection", "add-3", "concat", "nested"],
)
def test_forks_pass_a_float64_gradient_check(model):
    report = gradcheck(model, x64(2, 2, 5, 5))
    assert report.ok, str(report)


def test_input_grad_false_skips_delta_x_but_still_fills_every_parameter_gradient():
    model = dn.Residual(conv_block(2, 2))
    x, dy = x64(2, 2, 5, 5), x64(2, 2, 5, 5, seed=1)
    model(x)
    model.backward(dy)
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model(x)
    assert model.backward(dy, input_grad=False) is None
    for p, g in zip(model.parameters(), full):
        np.testing.assert_allclose(p.grad, g, rtol=1e-12)


def test_concat_splits_delta_along_the_axis():
    a, b = dn.Dense(3, 2, rng=0, dtype=F64), dn.Dense(3, 4, rng=1, dtype=F64)
    cat = dn.Concat(a, b)
    x, dy = x64(5, 3), x64(5, 6, seed=1)
    assert cat(x).shape == (5, 6)
    dx = cat.backward(dy)
    a(x), b(x)
    np.testing.assert_allclose(dx, a.backward(dy[:, :2]) + b.backward(dy[:, 2:]), rtol=1e-12)


def test_shape_mismatches_are_clear_errors():
    with pytest.raises(ValueError, match=r"Residual\(.*block's output \(2, 3\).*\(2, 4\)"):
        dn.Residual(dn.Dense(4, 3))(np.ones((2, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"Add\(2 branches\): every branch .* \[\(2, 3\), \(2, 4\)"
    ):
        dn.Add(dn.Dense(4, 3), dn.Identity())(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Concat\(2 branches, axis=1\): .* every axis but 1"):
        dn.Concat(dn.Identity(), dn.Flatten())(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="Add: expected at least 2 branches"):
        dn.Add(dn.Identity())
    with pytest.raises(ValueError, match="Concat: axis must be an int >= 1"):
        dn.Concat(dn.Identity(), dn.Identity(), axis=0)
    with pytest.raises(TypeError, match="Residual: shortcut must be a Layer or None"):
        dn.Residual(dn.Identity(), "x")


def test_names_config_round_trip_and_modes():
    model = dn.Sequential(
        dn.Residual(conv_block(2, 3, stride=2), dn.Conv2D(2, 3, 1, stride=2, dtype=F64)),
        dn.Concat(dn.Identity(), dn.Dropout(0.2)),
    )
    names = list(model.state_dict())
    assert names[:2] == ["0.block.0.weight", "0.block.1.weight"]
    assert "0.shortcut.weight" in names and "0.block.1.running_mean" in names
    again = layer_from_dict(layer_to_dict(model))
    assert repr(again) == repr(model)
    again.load_state_dict(model.state_dict())
    model.eval()
    again.eval()
    x = x64(2, 2, 6, 6)
    np.testing.assert_array_equal(again(x), model(x))
    assert not model[1][1].training


def test_residual_matches_pytorch_forward_and_backward():
    torch = torch_or_skip()
    nn = torch.nn
    ours = dn.Residual(conv_block(2, 3, stride=2), dn.Conv2D(2, 3, 1, stride=2, rng=7, dtype=F64))

    class TorchRes(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(2, 3, 3, 2, 1, bias=False),
                nn.BatchNorm2d(3),
                nn.Tanh(),
                nn.Conv2d(3, 3, 3, 1, 1),
            )
            self.shortcut = nn.Conv2d(2, 3, 1, 2)

        def forward(self, x):
            return self.block(x) + self.shortcut(x)

    net = TorchRes().double()
    state = {k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}
    state["block.1.num_batches_tracked"] = torch.tensor(0)
    net.load_state_dict(state)
    x, dy = x64(4, 2, 7, 7), x64(4, 3, 4, 4, seed=2)
    xt = torch.from_numpy(x).requires_grad_()
    yt = net(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads = {n: p.grad for n, p in ours.named_parameters()}
    for name, p in net.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_concat_matches_pytorch():
    torch = torch_or_skip()
    a = dn.Conv1D(2, 3, 3, padding=1, rng=0, dtype=F64)
    b = dn.Conv1D(2, 1, 1, rng=1, dtype=F64)
    ours = dn.Concat(a, b)
    ta, tb = torch.nn.Conv1d(2, 3, 3, padding=1).double(), torch.nn.Conv1d(2, 1, 1).double()
    for layer, mod in ((a, ta), (b, tb)):
        mod.weight.data = torch.from_numpy(layer.weight.data.copy())
        mod.bias.data = torch.from_numpy(layer.bias.data.copy())
    x, dy = x64(3, 2, 6), x64(3, 4, 6, seed=3)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.cat([ta(xt), tb(xt)], dim=1)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.weight.grad, ta.weight.grad.numpy(), rtol=1e-12)
