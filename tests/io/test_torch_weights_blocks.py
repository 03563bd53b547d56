"""PyTorch weights in and out of blocks: a ResNet basic block with a 1x1-convolution shortcut
as PyTorch users write it, against deltanet's Residual and against a user's block, both ways;
predictions agree to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.io.safetensors import write_safetensors
from deltanet.io.torch_weights import load_torch_weights, save_torch_weights
from tests.utils import torch_or_skip

X = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


def torch_block(torch):
    """torchvision's BasicBlock with a downsampling shortcut (named attributes)."""
    nn, F = torch.nn, torch.nn.functional

    class BasicBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(8)
            self.shortcut = nn.Sequential(
                nn.Conv2d(3, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8)
            )

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + self.shortcut(x))

    return BasicBlock()


def residual_block() -> dn.Sequential:
    """The same block from deltanet's containers: names 0.block.0, 0.shortcut.1, ..."""
    block = dn.Sequential(
        dn.Conv2D(3, 8, 3, stride=2, padding=1, bias=False, rng=5), dn.BatchNorm2D(8), dn.ReLU(),
        dn.Conv2D(8, 8, 3, padding=1, bias=False, rng=6), dn.BatchNorm2D(8),
    )  # fmt: skip
    shortcut = dn.Sequential(dn.Conv2D(3, 8, 1, stride=2, bias=False, rng=7), dn.BatchNorm2D(8))
    return dn.Sequential(dn.Residual(block, shortcut), dn.ReLU())


class UserBlock(dn.Layer):
    """The same block as a user writes it in deltanet: PyTorch's attribute names."""

    def __init__(self):
        super().__init__()
        self.conv1 = dn.Conv2D(3, 8, 3, stride=2, padding=1, bias=False, rng=1)
        self.bn1 = dn.BatchNorm2D(8)
        self.conv2 = dn.Conv2D(8, 8, 3, padding=1, bias=False, rng=2)
        self.bn2 = dn.BatchNorm2D(8)
        self.shortcut = dn.Sequential(dn.Conv2D(3, 8, 1, stride=2, bias=False), dn.BatchNorm2D(8))
        self.relu1, self.relu2 = dn.ReLU(), dn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


def trained_torch_block(torch, tmp_path):
    """A few SGD steps in training mode (weights and running statistics move), saved."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = torch_block(torch)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        net(torch.from_numpy(X)).square().mean().backward()
        opt.step()
    net.eval()
    save_file(net.state_dict(), tmp_path / "block.safetensors")
    return net


@pytest.mark.parametrize("build", [residual_block, UserBlock], ids=["residual", "user_block"])
def test_torch_resnet_block_loads_into_deltanet(tmp_path, build):
    torch = torch_or_skip()
    net = trained_torch_block(torch, tmp_path)
    model = build()
    mapping = load_torch_weights(model, tmp_path / "block.safetensors")
    if build is residual_block:
        assert mapping["conv1.weight"] == "0.block.0.weight"
        assert mapping["bn2.running_var"] == "0.block.4.running_var"
        assert mapping["shortcut.1.bias"] == "0.shortcut.1.bias"
    else:
        assert all(k == v for k, v in mapping.items())  # the same names
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.eval()(X), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", [residual_block, UserBlock], ids=["residual", "user_block"])
def test_deltanet_resnet_block_loads_into_torch(tmp_path, build):
    torch = torch_or_skip()
    from safetensors.torch import load_file

    trained_torch_block(torch, tmp_path)  # the template: names and dtypes
    model = build()
    for i in range(3):  # training-mode passes move the running statistics
        model(np.random.default_rng(i).standard_normal(X.shape).astype(np.float32))
    for i, p in enumerate(model.parameters()):
        p.data += 0.1 * np.random.default_rng(10 + i).standard_normal(p.shape).astype(np.float32)
    template = tmp_path / "block.safetensors"
    save_torch_weights(model, tmp_path / "out.safetensors", template=template)
    net = torch_block(torch)
    net.load_state_dict(load_file(tmp_path / "out.safetensors"))  # strict: every name
    net.eval()
    with torch.no_grad():
        got = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, model.eval()(X), rtol=1e-5, atol=1e-5)


def test_blocks_round_trip_without_torch(tmp_path):
    model = dn.Sequential(
        dn.Concat(dn.Conv2D(3, 2, 1, rng=1), dn.Residual(dn.Conv2D(3, 3, 3, padding=1, rng=2))),
        dn.Add(dn.BatchNorm2D(5), dn.Identity()),
    )
    model(X)
    save_torch_weights(model, tmp_path / "w.safetensors")
    other = dn.Sequential(
        dn.Concat(dn.Conv2D(3, 2, 1, rng=3), dn.Residual(dn.Conv2D(3, 3, 3, padding=1, rng=4))),
        dn.Add(dn.BatchNorm2D(5), dn.Identity()),
    )
    mapping = load_torch_weights(other, tmp_path / "w.safetensors")
    assert mapping["0.1.block.weight"] == "0.1.block.weight"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[name], value, err_msg=name)


def test_layers_of_a_block_take_the_modules_in_tree_order(tmp_path):
    """Two same-shaped convolutions (block, shortcut) take PyTorch's in natural name order."""
    model = dn.Residual(dn.Conv2D(2, 2, 1, rng=0), dn.Conv2D(2, 2, 1, rng=1))
    rng = np.random.default_rng(0)
    state = {f"{m}.{leaf}": rng.standard_normal((2, 2, 1, 1) if leaf == "weight" else (2,))
             for m in ("a", "b") for leaf in ("weight", "bias")}  # fmt: skip
    write_safetensors(tmp_path / "w.safetensors", state)
    mapping = load_torch_weights(model, tmp_path / "w.safetensors")
    assert mapping == {
        "a.weight": "block.weight", "a.bias": "block.bias",
        "b.weight": "shortcut.weight", "b.bias": "shortcut.bias",
    }  # fmt: skip
