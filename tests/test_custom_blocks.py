"""Issue 14's acceptance: a block a user writes is seen by every part of the package.

The 12-line residual block of the issue (Conv2D, BatchNorm2D, ReLU, Dropout) and a layer with
list attributes: eval mode reaches every sub-layer, ``evaluate`` is deterministic, parameter
names are unique, save -> load round-trips, ONNX export matches onnxruntime, and ``pack`` and
the divergence diagnosis see inside.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.binary import pack
from deltanet.optim import SGD
from deltanet.train.divergence import TrainingDiverged


@dn.register_layer
class UserResidual(dn.Layer):
    """y = x + drop(relu(bn(conv(x))))."""

    def __init__(self, channels: int, binary: bool = False) -> None:
        super().__init__()
        self.channels, self.binary = channels, binary
        conv = dn.QConv2D if binary else dn.Conv2D
        self.conv = conv(channels, channels, 3, padding=1, rng=0)
        self.bn = dn.BatchNorm2D(channels)
        self.relu = dn.ReLU()
        self.drop = dn.Dropout(0.3, rng=1)

    def _forward(self, x):
        return x + self.drop(self.relu(self.bn(self.conv(x)))), None

    def _backward(self, dy, cache, input_grad):
        d = self.bn.backward(self.relu.backward(self.drop.backward(dy)))
        return self.conv.backward(d) + dy

    def get_config(self):
        return {"channels": self.channels, "binary": self.binary}


@dn.register_layer
class UserTwoLists(dn.Layer):
    """Two list attributes of layers: y = left(x) + right(x)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.left = [dn.Dense(features, features, rng=1)]
        self.right = [dn.Dense(features, features, rng=2), dn.Tanh()]

    def _forward(self, x):
        return self.left[0](x) + self.right[1](self.right[0](x)), None

    def _backward(self, dy, cache, input_grad):
        return self.left[0].backward(dy) + self.right[0].backward(self.right[1].backward(dy))

    def get_config(self):
        return {"features": self.features}


def model(binary: bool = False) -> dn.Sequential:
    return dn.Sequential(
        UserResidual(2, binary), dn.Flatten(), UserTwoLists(2 * 5 * 5), dn.Dense(50, 3, rng=3)
    )


def data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2, 5, 5)).astype(np.float32), rng.integers(0, 3, n)


def test_eval_mode_reaches_every_sub_layer_and_evaluate_is_deterministic():
    m = model()
    x, y = data()
    m(x)  # a training pass: batch statistics and dropout masks in play
    first = dn.evaluate(m, "cross_entropy", x, y)
    second = dn.evaluate(m, "cross_entropy", x, y)
    assert first == second
    m.eval()
    assert [name for name, layer in m.named_layers() if layer.training] == []


def test_parameter_names_are_unique_and_state_dict_keeps_every_weight():
    m = model()
    names = [name for name, _ in m.named_parameters()]
    assert len(names) == len(set(names)) == len(m.parameters())
    assert {"2.left.0.weight", "2.right.0.weight", "0.conv.weight", "0.bn.bias"} <= set(names)
    assert len(m.state_dict()) == len(names) + 3  # and the batch norm's three buffers


def test_save_load_round_trips(tmp_path: Path):
    m = model()
    x, y = data()
    dn.fit(m, "cross_entropy", SGD(m, lr=0.05), (x, y), epochs=1, batch_size=4, verbose=0)
    m.eval()
    path = tmp_path / "custom.safetensors"
    dn.save(m, path)
    again = dn.load(path)
    assert type(again[0]) is UserResidual and type(again[2]) is UserTwoLists
    again.eval()
    np.testing.assert_array_equal(again(x), m(x))


def test_onnx_export_matches_onnxruntime(tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from deltanet.io.onnx import onnx_exporter

    @onnx_exporter(UserResidual)
    def _residual(layer, graph, site):
        h, shape = site.x, site.shape
        for name in ("conv", "bn", "relu", "drop"):
            h, shape = graph.add(getattr(layer, name), site.child(name), h, shape)
        return graph.node("Add", [site.x, h], site.name)

    @onnx_exporter(UserTwoLists)
    def _two_lists(layer, graph, site):
        a, _ = graph.add(layer.left[0], site.child("left.0"), site.x, site.shape)
        h, shape = graph.add(layer.right[0], site.child("right.0"), site.x, site.shape)
        b, _ = graph.add(layer.right[1], site.child("right.1"), h, shape)
        return graph.node("Add", [a, b], site.name)

    m = model()
    x, _ = data()
    m(x)  # running statistics away from 0 and 1
    m.eval()
    path = tmp_path / "custom.onnx"
    dn.export_onnx(m, path, input_shape=(2, 5, 5))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], m(x), rtol=1e-5, atol=1e-5)


def test_pack_sees_inside_the_block():
    m = model(binary=True)
    x, _ = data()
    m(x)
    m.eval()
    packed, report = pack(m, return_report=True)
    assert type(packed[0].conv).__name__ == "PackedConv"
    assert any(line.startswith("0.conv:") for line in report), report
    np.testing.assert_allclose(packed(x), m(x), rtol=1e-5, atol=1e-5)


def test_divergence_diagnosis_names_the_layer_inside_the_block():
    m = model()
    m[0].conv.weight.data[0, 0, 0, 0] = np.nan
    x, y = data()
    with pytest.raises(TrainingDiverged) as info:
        dn.fit(m, "cross_entropy", SGD(m, lr=0.05), (x, y), epochs=1, batch_size=4, verbose=0)
    assert info.value.layer == "0.conv"
    assert "0.conv Conv2D(in_channels=2)" in str(info.value)


def test_the_layer_in_architecture_md_works_as_written(tmp_path: Path):
    """The "how to add a layer" example: runs, passes a gradient check, saves and loads."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    code = re.search(r"```python\n(import numpy.*?)```", text, re.S).group(1)
    space: dict = {}
    exec(compile(code, "architecture.md", "exec"), space)
    scale = space["Scale"](3)
    scale.weight.data[:] = [0.5, -1.0, 2.0]
    report = dn.gradcheck(
        dn.Sequential(dn.Dense(4, 3, rng=0, dtype=np.float64), scale),
        np.random.default_rng(1).standard_normal((2, 4)),
    )
    assert report.ok, str(report)
    dn.save(dn.Sequential(space["Scale"](3)), tmp_path / "scale.safetensors")
    assert type(dn.load(tmp_path / "scale.safetensors")[0]).__name__ == "Scale"
