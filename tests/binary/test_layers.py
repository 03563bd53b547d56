"""QActivation, QDense, QConv1D/2D/3D: forward against naive references, backward against
PyTorch with straight-through estimators, config and save/load round trips, bad input."""

import numpy as np
import pytest

from deltanet import io
from deltanet.binary.layers import QActivation, QConv1D, QConv2D, QConv3D, QDense
from deltanet.layers.registry import layer_from_dict, layer_to_dict
from deltanet.optim import SGD
from tests.utils import check_grads, torch_or_skip


def torch_ste(torch, t, act_bit):
    """The forward/backward of ``quantize_act`` written with PyTorch's detach() trick."""
    if act_bit == 32:
        return t
    if act_bit == 1:
        ht = torch.nn.functional.hardtanh(t)
        return ht + (torch.where(t >= 0, 1.0, -1.0).to(t.dtype) - ht).detach()
    c = t.clamp(0, 1)
    n = 2**act_bit - 1
    return c + (torch.round(c * n) / n - c).detach()


def torch_weight(torch, w, bits, scaling):
    if bits == 32:
        return w
    dims = tuple(range(1, w.dim()))
    alpha = {
        "none": torch.ones((), dtype=w.dtype),
        "layer": w.abs().mean(),
        "channel": w.abs().mean(dim=dims, keepdim=True),
    }[scaling].detach()
    if bits == 1:
        return alpha * torch_ste(torch, w, 1)
    t = torch.tanh(w)
    s = t / (2 * t.abs().max()) + 0.5
    n = 2**bits - 1
    q = s + (torch.round(s * n) / n - s).detach()
    return alpha * (2 * q - 1)


def smooth_input(rng, shape):
    """Values away from the kinks of every quantizer (0, 1, -1, and the k-bit steps)."""
    x = rng.uniform(-1.5, 1.5, shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)


@pytest.mark.parametrize(
    "act_bit,weight_bit,scaling", [(1, 1, "none"), (1, 1, "layer"), (1, 1, "channel"),
                                   (2, 3, "layer"), (32, 1, "channel"), (1, 32, "none")],
)  # fmt: skip
def test_qdense_matches_torch(act_bit, weight_bit, scaling):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    layer = QDense(13, 5, act_bit=act_bit, weight_bit=weight_bit, scaling=scaling, rng=rng,
                   dtype=np.float64)  # fmt: skip
    x = smooth_input(rng, (4, 13))
    dy = rng.standard_normal((4, 5))
    y = layer(x)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.weight.data, requires_grad=True)
    bt = torch.tensor(layer.bias.data, requires_grad=True)
    yt = torch.nn.functional.linear(
        torch_ste(torch, xt, act_bit), torch_weight(torch, wt, weight_bit, scaling), bt
    )
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, bt.grad.numpy(), rtol=1e-10, atol=1e-12)


CONVS = [
    (QConv1D, (2, 4, 9), dict(kernel_size=3, stride=2, padding=1)),
    (QConv2D, (2, 4, 6, 7), dict(kernel_size=(3, 2), padding=1, dilation=(2, 1), groups=2)),
    (QConv3D, (1, 2, 4, 5, 4), dict(kernel_size=2, padding="same")),
]


@pytest.mark.parametrize("cls,shape,kw", CONVS)
@pytest.mark.parametrize("scaling", ["none", "channel"])
def test_qconv_matches_torch_and_naive_loop(cls, shape, kw, scaling):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    layer = cls(shape[1], 6, scaling=scaling, rng=rng, dtype=np.float64, **kw)
    x = smooth_input(rng, shape)
    y = layer(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[cls.spatial_dims]  # fmt: skip
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.weight.data, requires_grad=True)
    pad = "same" if kw.get("padding") == "same" else kw.get("padding", 0)
    yt = conv(
        torch_ste(torch, xt, 1), torch_weight(torch, wt, 1, scaling), torch.tensor(layer.bias.data),
        stride=kw.get("stride", 1), padding=pad, dilation=kw.get("dilation", 1),
        groups=kw.get("groups", 1),
    )  # fmt: skip
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.weight.grad, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    if cls is QConv1D:  # a naive loop over positions: y = sum sign(x) * alpha sign(w) + b
        xs, wq = np.where(x >= 0, 1.0, -1.0), layer.quantized_weight()
        xp = np.pad(xs, ((0, 0), (0, 0), (1, 1)))
        for n in range(shape[0]):
            for o in range(6):
                for p in range(y.shape[2]):
                    v = sum(xp[n, c, 2 * p + k] * wq[o, c, k] for c in range(4) for k in range(3))
                    assert y[n, o, p] == pytest.approx(v + layer.bias.data[o], abs=1e-12)


def test_qdense_gradient_of_the_surrogate():
    """With the input inside (-1, 1), the STE layer is the gradient of clip(x) · sign(W)ᵀ + b."""
    rng = np.random.default_rng(2)
    layer = QDense(6, 3, rng=rng, dtype=np.float64)
    x = rng.uniform(-0.9, 0.9, (2, 6))
    wq = layer.quantized_weight()

    def forward(r):
        y = layer(x)
        np.testing.assert_allclose(y, np.where(x >= 0, 1, -1) @ wq.T + layer.bias.data)
        return np.clip(x, -1, 1) @ wq.T, None if r is None else [layer.backward(r)]

    check_grads(forward, [x])


@pytest.mark.parametrize("approx", [False, True])
def test_qactivation(approx):
    rng = np.random.default_rng(3)
    x = smooth_input(rng, (3, 4))
    layer = QActivation(1, approx=approx)
    np.testing.assert_array_equal(layer(x), np.where(x >= 0, 1.0, -1.0))
    dx = layer.backward(np.ones_like(x))
    expected = np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x) if approx else 1.0, 0.0)
    np.testing.assert_allclose(dx, expected)
    k = QActivation(2)
    np.testing.assert_allclose(k(np.array([[-1.0, 0.2, 0.5, 2.0]])), [[0, 1 / 3, 2 / 3, 1]])


def test_config_save_load_and_an_optimizer_step(tmp_path):
    rng = np.random.default_rng(4)
    layer = QConv2D(3, 4, 3, padding=1, act_bit=1, weight_bit=2, scaling="layer", rng=rng)
    clone = layer_from_dict(layer_to_dict(layer))
    assert clone.get_config() == layer.get_config()
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    layer(x)
    layer.backward(np.ones((2, 4, 5, 5), np.float32))
    before = layer.weight.data.copy()
    SGD(layer.parameters(), lr=0.1).step()
    np.testing.assert_allclose(layer.weight.data, before - 0.1 * layer.weight.grad, rtol=1e-6)
    io.save(layer, tmp_path / "q.safetensors")
    loaded = io.load(tmp_path / "q.safetensors")
    assert isinstance(loaded, QConv2D) and loaded.scaling == "layer"
    np.testing.assert_array_equal(loaded(x), layer(x))


BITS = "must be an int from 1 to 32. Received:"
SCALINGS = "scaling must be one of 'none', 'layer', 'channel'. Received: 'max'"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: QDense(4, 2, act_bit=0), rf"QDense\(in_features=4\): act_bit {BITS} 0"),
        (lambda: QDense(4, 2, weight_bit=33), rf"QDense\(in_features=4\): weight_bit {BITS} 33"),
        (lambda: QConv2D(3, 2, 3, scaling="max"), rf"QConv2D\(in_channels=3\): {SCALINGS}"),
        (lambda: QConv1D(3, 2, 3, act_bit=1.5), r"QConv1D\(in_channels=3\): act_bit"),
        (lambda: QActivation(40), rf"QActivation: act_bit {BITS} 40"),
        (lambda: QActivation(2, approx=True), r"QActivation: approx=True needs act_bit=1"),
    ],
)
def test_bad_arguments_name_the_layer(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_input_names_the_layer():
    with pytest.raises(ValueError, match=r"QDense\(in_features=4\): expected input of shape"):
        QDense(4, 2)(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match=r"QConv2D\(in_channels=3\)"):
        QConv2D(3, 2, 3)(np.zeros((1, 3, 4, 4), np.int64))
