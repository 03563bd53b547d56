"""PyTorch weights in and out through safetensors: a trained PyTorch LeNet-5 loaded into
deltanet predicts the same (1e-5), and a trained deltanet model loads into PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import deltanet as dn
from deltanet.io import FormatError
from deltanet.io.safetensors import read_safetensors, write_safetensors
from deltanet.io.torch_weights import load_torch_weights, save_torch_weights
from deltanet.ops.losses import softmax_cross_entropy
from deltanet.optim import SGD
from deltanet.zoo import build_model
from tests.utils import torch_or_skip


def torch_lenet5(torch):
    """LeNet-5 as PyTorch users write it: named attributes, functional ReLU and pooling."""
    nn, F = torch.nn, torch.nn.functional

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(400, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = F.relu(self.fc1(x.flatten(1)))
            return self.fc3(F.relu(self.fc2(x)))

    return LeNet5()


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


def test_trained_torch_lenet5_loads_into_deltanet(tmp_path):
    torch = torch_or_skip()
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = torch_lenet5(torch)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = data()
    for _ in range(3):  # a few steps, so the weights are no longer their initial draw
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    save_file(net.state_dict(), tmp_path / "lenet.safetensors")
    model = build_model("lenet5", seed=1)
    mapping = load_torch_weights(model, tmp_path / "lenet.safetensors")
    assert mapping["conv1.weight"] == "0.weight" and mapping["fc3.bias"] == "11.bias"
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-5)
    assert (model(x).argmax(1) == expected.argmax(1)).all()


def test_trained_deltanet_lenet5_loads_into_torch(tmp_path):
    torch = torch_or_skip()
    from safetensors.torch import load_file, save_file

    model = build_model("lenet5", seed=2)
    opt = SGD(model.parameters(), lr=0.05)
    x, y = data(seed=3)
    for _ in range(3):
        model.zero_grad()
        _, dlogits = softmax_cross_entropy(model(x), y)
        model.backward(dlogits)
        opt.step()
    net = torch_lenet5(torch)
    save_file(net.state_dict(), tmp_path / "template.safetensors")
    save_torch_weights(
        model, tmp_path / "out.safetensors", template=tmp_path / "template.safetensors"
    )
    net.load_state_dict(load_file(tmp_path / "out.safetensors"))  # strict: every name matches
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_buffers_and_shape_matching_both_ways(tmp_path):
    """Names that sort out of definition order (bn < conv < fc); int64 num_batches_tracked."""
    torch = torch_or_skip()
    from safetensors.torch import load_file, save_file

    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3)
            self.bn = nn.BatchNorm1d(3)
            self.fc = nn.Linear(3 * 6, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))

    torch.manual_seed(1)
    net = Net()
    x = np.random.default_rng(4).standard_normal((5, 2, 8)).astype(np.float32)
    net(torch.from_numpy(x))  # training mode: updates the running statistics
    net.eval()
    save_file(net.state_dict(), tmp_path / "net.safetensors")
    model = dn.Sequential(dn.Conv1D(2, 3, 3), dn.BatchNorm1D(3), dn.ReLU(), dn.Flatten(),
                          dn.Dense(18, 4))  # fmt: skip
    load_torch_weights(model, tmp_path / "net.safetensors")
    assert model.layers[1].num_batches_tracked == 1
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(x), net(torch.from_numpy(x)).numpy(), atol=1e-5)
    save_torch_weights(model, tmp_path / "back.safetensors", template=tmp_path / "net.safetensors")
    back = load_file(tmp_path / "back.safetensors")
    assert back["bn.num_batches_tracked"].dtype == torch.int64
    net2 = Net()
    net2.load_state_dict(back)
    for key, value in net.state_dict().items():
        assert torch.equal(value, net2.state_dict()[key]), key


def test_without_template_names_fit_an_nn_sequential(tmp_path):
    torch = torch_or_skip()
    from safetensors.torch import load_file

    model = dn.Sequential(dn.Conv2D(1, 2, 3), dn.BatchNorm2D(2), dn.ReLU(), dn.Flatten(),
                          dn.Dense(2 * 4 * 4, 3))  # fmt: skip
    save_torch_weights(model, tmp_path / "w.safetensors")
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(32, 3)).eval()  # fmt: skip
    net.load_state_dict(load_file(tmp_path / "w.safetensors"))
    x = np.random.default_rng(5).standard_normal((2, 1, 6, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), model.eval()(x), atol=1e-5)


def lenet_like_state(**changes) -> dict[str, np.ndarray]:
    """A state dict with PyTorch LeNet-5 names and shapes (as a torch-free file would hold)."""
    shapes = {
        "conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5),
        "conv2.bias": (16,), "fc1.weight": (120, 400), "fc1.bias": (120,),
        "fc2.weight": (84, 120), "fc2.bias": (84,), "fc3.weight": (10, 84), "fc3.bias": (10,),
    }  # fmt: skip
    shapes.update(changes)
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items() if s}


def test_natural_order_and_float64_cast_without_torch(tmp_path):
    """Names with numbers sort as numbers (layer 10 after layer 2); float64 casts to float32."""
    model = dn.Sequential(*[dn.Dense(3, 3) for _ in range(12)])
    rng = np.random.default_rng(0)
    state = {f"net.{i}.{leaf}": rng.standard_normal((3, 3) if leaf == "weight" else (3,))
             for i in range(12) for leaf in ("weight", "bias")}  # fmt: skip
    write_safetensors(tmp_path / "w.safetensors", state)
    mapping = load_torch_weights(model, tmp_path / "w.safetensors")
    assert mapping["net.10.weight"] == "10.weight"
    np.testing.assert_array_equal(model.layers[10].weight.data, state["net.10.weight"].astype("f4"))
    assert model.layers[10].weight.data.dtype == np.float32


@pytest.mark.parametrize(
    "changes, match",
    [
        (
            {"fc2.weight": (84, 121)},
            r"no PyTorch module fits deltanet layer 9 .*fc2: weight \[84, 121\]",
        ),
        ({"fc3.bias": None}, r"no PyTorch module fits deltanet layer 11"),
        ({"fc4.weight": (2, 2)}, r"PyTorch tensors with no deltanet counterpart: \['fc4.weight'\]"),
    ],
)
def test_disagreements_are_named_and_leave_the_model_unchanged(tmp_path, changes, match):
    write_safetensors(tmp_path / "w.safetensors", lenet_like_state(**changes))
    model = build_model("lenet5", seed=0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(FormatError, match=match):
        load_torch_weights(model, tmp_path / "w.safetensors")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_integer_tensor_for_a_weight_is_rejected(tmp_path):
    state = lenet_like_state()
    state["fc1.bias"] = state["fc1.bias"].astype(np.int32)
    write_safetensors(tmp_path / "w.safetensors", state)
    with pytest.raises(FormatError, match=r"'fc1.bias': expected float32. Received: int32"):
        load_torch_weights(build_model("lenet5"), tmp_path / "w.safetensors")


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="load_torch_weights: model must be a deltanet Layer"):
        load_torch_weights("model", tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="save_torch_weights: model must be a deltanet Layer"):
        save_torch_weights(None, tmp_path / "w.safetensors")
    with pytest.raises(OSError):
        load_torch_weights(build_model("mlp"), tmp_path / "missing.safetensors")


def test_round_trip_without_torch(tmp_path):
    model = build_model("digits_cnn", seed=3)
    save_torch_weights(model, tmp_path / "w.safetensors")
    other = build_model("digits_cnn", seed=4)
    load_torch_weights(other, tmp_path / "w.safetensors")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    tensors, _ = read_safetensors(tmp_path / "w.safetensors")
    assert set(tensors) == set(model.state_dict())


def test_torch_weights_module_does_not_import_torch():
    code = "import sys, deltanet.io.torch_weights; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_names_with_a_wrong_shape_never_fall_back_to_another_module(tmp_path):
    model = dn.Sequential(dn.Dense(3, 3), dn.ReLU(), dn.Dense(3, 3))
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    state["0.weight"] = np.ones((3, 4), np.float32)  # layer 2 would still fit layer 0's shapes
    write_safetensors(tmp_path / "w.safetensors", state)
    with pytest.raises(
        FormatError, match=r"no PyTorch module fits deltanet layer 0 .*0: weight \[3, 4\]"
    ):
        load_torch_weights(model, tmp_path / "w.safetensors")
