"""PyTorch parity of the residual zoo models: a whole forward and backward in float64.

The PyTorch twins are written here as PyTorch users write them (torchvision's BasicBlock; the
Bi-Real block with ``torch.autograd.Function`` signs), independently of deltanet's builders.
Their weights, with random batch-norm affines and statistics, go through a safetensors file and
``load_torch_weights`` into the zoo model; outputs, δx, every parameter's gradient and the
updated running statistics must agree, in training mode and in eval mode.
"""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.io.torch_weights import load_torch_weights
from deltanet.zoo import build_model
from tests.utils import torch_or_skip

CHANNELS, BLOCKS = (3, 4, 6), 2  # three stages: identity blocks and two projections


def torch_twins(torch):
    """``Net``: the PyTorch module class taking ``(ndim, c_in, classes, bireal)``."""
    nn, F = torch.nn, torch.nn.functional

    class SignApprox(torch.autograd.Function):  # Bi-Real's ApproxSign
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (2 - 2 * x.abs()) * (x.abs() <= 1)

    class SignSTE(torch.autograd.Function):  # sign with the hardtanh STE (larq's ste_sign)
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x.abs() <= 1)

    def layers(ndim):
        return ((nn.Conv1d, nn.BatchNorm1d, nn.AvgPool1d) if ndim == 1
                else (nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d))  # fmt: skip

    def plan():
        c_in = CHANNELS[0]
        for s, c_out in enumerate(CHANNELS):
            for b in range(BLOCKS):
                yield c_in, c_out, 2 if s > 0 and b == 0 else 1
                c_in = c_out

    class BasicBlock(nn.Module):
        def __init__(self, ndim, c_in, c_out, stride):
            super().__init__()
            conv, bn, _ = layers(ndim)
            self.conv1 = conv(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = bn(c_out)
            self.conv2 = conv(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = bn(c_out)
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride, bias=False), bn(c_out))

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + self.shortcut(x))

    class BinaryConv(nn.Module):
        """1-bit input and weights, weights scaled by mean |W| per output filter (a constant)."""

        def __init__(self, ndim, c_in, c_out, stride):
            super().__init__()
            self.conv = layers(ndim)[0](c_in, c_out, 3, stride, 1, bias=False)

        def forward(self, x):
            w = self.conv.weight
            alpha = w.abs().mean(dim=tuple(range(1, w.ndim)), keepdim=True).detach()
            return self.conv._conv_forward(SignSTE.apply(x), alpha * SignSTE.apply(w), None)

    class BiRealBlock(nn.Module):
        def __init__(self, ndim, c_in, c_out, stride):
            super().__init__()
            conv, bn, pool = layers(ndim)
            self.binary = BinaryConv(ndim, c_in, c_out, stride)
            self.bn = bn(c_out)
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(
                    pool(2, ceil_mode=True), conv(c_in, c_out, 1, bias=False), bn(c_out)
                )

        def forward(self, x):
            return self.bn(self.binary(SignApprox.apply(x))) + self.shortcut(x)

    class Net(nn.Module):
        def __init__(self, ndim, c_in, classes, bireal):
            super().__init__()
            conv, bn, _ = layers(ndim)
            k = 5 if ndim == 1 else 3
            self.bireal = bireal
            self.conv1 = conv(c_in, CHANNELS[0], k, padding=k // 2, bias=False)
            self.bn1 = bn(CHANNELS[0])
            blocks = []
            for c_i, c_o, s in plan():
                if bireal:
                    blocks += [BiRealBlock(ndim, c_i, c_o, s), BiRealBlock(ndim, c_o, c_o, 1)]
                else:
                    blocks.append(BasicBlock(ndim, c_i, c_o, s))
            self.layers = nn.Sequential(*blocks)
            self.fc = nn.Linear(CHANNELS[-1], classes)

        def forward(self, x):
            x = self.bn1(self.conv1(x))
            x = self.layers(x if self.bireal else F.relu(x))
            return self.fc(x.flatten(2).mean(-1))

    return Net


SHAPES = {"resnet1d": (2, 13), "resnet20": (3, 11, 10)}


@pytest.mark.parametrize("name", ["resnet1d", "resnet20", "bireal_resnet1d", "bireal_resnet20"])
def test_forward_and_backward_match_pytorch(name, tmp_path):
    torch = torch_or_skip()
    from safetensors.torch import save_file

    shape = SHAPES[name.removeprefix("bireal_")]
    torch.manual_seed(0)
    net = torch_twins(torch)(len(shape) - 1, shape[0], 5, name.startswith("bireal")).double()
    gen = torch.Generator().manual_seed(1)
    for module in net.modules():  # batch norms away from their 1/0 start: a swap would show
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            for t in (module.weight, module.bias, module.running_mean):
                t.data = torch.randn(t.shape, generator=gen, dtype=t.dtype)
            module.running_var.data = 0.5 + torch.rand(module.num_features, generator=gen).double()
    save_file(net.state_dict(), tmp_path / "twin.safetensors")
    model = build_model(name, input_shape=shape, num_classes=5, channels=CHANNELS,
                        blocks=BLOCKS, dtype=np.float64)  # fmt: skip
    mapping = load_torch_weights(model, tmp_path / "twin.safetensors")
    assert len(mapping) == len(net.state_dict())

    rng = np.random.default_rng(2)
    x, r = rng.standard_normal((4, *shape)), rng.standard_normal((4, 5))
    xt = torch.tensor(x, requires_grad=True)
    yt = net(xt)
    (yt * torch.from_numpy(r)).sum().backward()
    y = model(x)
    dx = model.backward(r)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-10)
    ours = dict(model.named_parameters())
    state = model.state_dict()
    for torch_name, p in net.named_parameters():
        got = ours[mapping[torch_name]].grad
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=torch_name)
    for torch_name, b in net.named_buffers():  # the running statistics this pass updated
        if torch_name.endswith(("running_mean", "running_var")):
            np.testing.assert_allclose(state[mapping[torch_name]], b.numpy(), rtol=1e-12)

    net.eval()
    model.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-10, atol=1e-10)
