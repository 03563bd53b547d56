"""Model files of blocks: containers and layers of one's own round-trip through save/load;
``save`` refuses, before writing anything, what ``load`` could not rebuild."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import deltanet as dn
from deltanet.io import FormatError, load, save
from deltanet.io.safetensors import read_safetensors
from deltanet.layers import registry
from deltanet.layers.registry import layer_to_dict

X = np.random.default_rng(0).standard_normal((4, 3, 6, 6)).astype(np.float32)


@dn.register_layer
class IoConvBlock(dn.Layer):
    """A user's block: convolution, batch norm, ReLU, dropout."""

    def __init__(self, in_channels: int, out_channels: int, p: float = 0.1) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.p = in_channels, out_channels, p
        self.conv = dn.Conv2D(in_channels, out_channels, 3, padding=1, rng=0)
        self.bn = dn.BatchNorm2D(out_channels)
        self.act = dn.ReLU()
        self.drop = dn.Dropout(p)

    def forward(self, x):
        return self.drop(self.act(self.bn(self.conv(x))))

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "p": self.p}


@dn.register_layer
class IoTower(dn.Layer):
    """A user's layer holding lists of layers (named ``convs.0``, ``norms.1``, ...)."""

    def __init__(self, channels: int, depth: int = 2) -> None:
        super().__init__()
        self.channels, self.depth = channels, depth
        self.convs = [dn.Conv2D(channels, channels, 1, rng=i) for i in range(depth)]
        self.norms = [dn.BatchNorm2D(channels) for _ in range(depth)]

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x))
        return x

    def get_config(self):
        return {"channels": self.channels, "depth": self.depth}


@dn.register_layer
class IoForgetful(dn.Layer):
    """Registered, but its get_config forgets ``width``: it would rebuild with 2."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.dense = dn.Dense(3, width, rng=0)

    def forward(self, x):
        return self.dense(x)


@dn.register_layer
class IoGlobalRng(dn.Layer):
    """Draws its weights from NumPy's global RNG."""

    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.n = n
        self.weight = dn.Parameter(np.random.standard_normal((n, n)))  # noqa: NPY002

    def get_config(self):
        return {"n": self.n}


class IoUnregistered(dn.Layer):
    def forward(self, x):
        return x


def trained(model: dn.Layer) -> dn.Layer:
    """One training forward pass (batch-norm statistics move), then eval mode."""
    model.train()
    model(X)
    return model.eval()


def round_trip(tmp_path, model: dn.Layer) -> dn.Layer:
    save(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert type(loaded) is type(model)
    as_json = lambda layer: json.loads(json.dumps(layer_to_dict(layer)))  # noqa: E731
    assert as_json(loaded) == as_json(model)
    state, back = model.state_dict(), loaded.state_dict()
    assert list(back) == list(state)
    for name, value in state.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)
    np.testing.assert_array_equal(loaded.eval()(X), model.eval()(X))
    return loaded


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> dn.Sequential:
    return dn.Sequential(dn.Conv2D(c_in, c_out, 3, stride, padding=1, rng=1), dn.BatchNorm2D(c_out))


BLOCKS = {
    "residual_identity": lambda: dn.Residual(
        dn.Sequential(conv_bn(3, 3), dn.ReLU(), conv_bn(3, 3))
    ),
    "residual_1x1_shortcut": lambda: dn.Residual(
        dn.Sequential(conv_bn(3, 4, 2), dn.ReLU()),
        dn.Sequential(dn.Conv2D(3, 4, 1, 2, bias=False, rng=2), dn.BatchNorm2D(4)),
    ),
    "add_three_branches": lambda: dn.Add(conv_bn(3, 2), dn.Conv2D(3, 2, 1, rng=3), conv_bn(3, 2)),
    "add_identity": lambda: dn.Add(conv_bn(3, 3), dn.Identity()),
    "concat": lambda: dn.Concat(conv_bn(3, 2), dn.Identity(), dn.MaxPool2D(3, 1, padding=1)),
    "identity": lambda: dn.Identity(),
    "custom_block": lambda: IoConvBlock(3, 5, p=0.3),
    "custom_list_attributes": lambda: IoTower(3, depth=3),
    "nested": lambda: dn.Sequential(
        IoConvBlock(3, 4), dn.Residual(IoTower(4)), dn.Concat(dn.Identity(), IoTower(4))
    ),
}


@pytest.mark.parametrize("case", list(BLOCKS))
def test_blocks_round_trip(tmp_path, case):
    round_trip(tmp_path, trained(BLOCKS[case]()))


def test_list_attributes_keep_their_names(tmp_path):
    loaded = round_trip(tmp_path, trained(IoTower(3, depth=2)))
    assert "convs.1.weight" in loaded.state_dict() and "norms.0.running_var" in loaded.state_dict()
    tensors, _ = read_safetensors(tmp_path / "m.safetensors")
    assert "model.norms.1.running_mean" in tensors


def test_a_loaded_custom_block_trains_its_dropout_and_batch_norm(tmp_path):
    save(trained(IoConvBlock(3, 5, p=0.5)), tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert all(layer.training for layer in loaded.layers_tree())  # as freshly built
    loaded.eval()
    assert not loaded.drop.training and not loaded.bn.training


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        IoUnregistered(),
        dn.Sequential(dn.ReLU(), dn.Residual(dn.Sequential(dn.ReLU(), IoUnregistered()))),
    ],
    ids=["top", "nested"],
)
def test_save_refuses_an_unregistered_class_before_writing(tmp_path, model):
    with pytest.raises(
        TypeError, match=r"IoUnregistered is not a registered layer.*register_layer"
    ):
        save(model, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


def test_a_refused_save_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "m.safetensors"
    save(dn.Sequential(dn.Dense(3, 2, rng=0)), path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="the layer at '1.0': IoUnregistered"):
        save(dn.Sequential(dn.Dense(3, 2), dn.Sequential(IoUnregistered())), path)
    with pytest.raises(ValueError, match="get_config"):
        save(IoForgetful(width=4), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]


def test_save_names_the_layer_whose_get_config_is_incomplete(tmp_path):
    model = dn.Sequential(dn.ReLU(), IoConvBlock(3, 2), dn.Flatten(), IoForgetful(width=4))
    expected = (
        r"IoForgetful\(\) at '3' does not rebuild from its get_config\(\): dense.weight is "
        r"float32 \(4, 3\) in the model but float32 \(2, 3\) when rebuilt\. Make "
        r"IoForgetful.get_config\(\) return every argument of its __init__"
    )
    with pytest.raises(ValueError, match=expected):
        save(model, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_names_a_config_that_from_config_rejects(tmp_path, monkeypatch):
    monkeypatch.setattr(IoTower, "get_config", lambda self: {"channels": 3, "height": 2})
    with pytest.raises(ValueError, match=r"IoTower\(channels=3\) at '1'.*rebuilding it raised"):
        save(dn.Sequential(dn.ReLU(), IoTower(3)), tmp_path / "m.safetensors")


def test_save_refuses_a_layer_held_twice(tmp_path):
    dense = dn.Dense(3, 3, rng=0)
    model = dn.Sequential(dense, dn.ReLU(), dn.Residual(dense))
    with pytest.raises(
        ValueError, match=r"the same Dense\(in_features=3\) is held at '0' and '2.block'"
    ):
        save(model, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_leaves_numpy_global_rng_alone(tmp_path):
    np.random.seed(7)  # noqa: NPY002 - the legacy global RNG is what is under test
    model = IoGlobalRng(3)
    state = np.random.get_state()  # noqa: NPY002
    save(model, tmp_path / "m.safetensors")
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_load_of_an_unknown_class_says_to_import_its_module(tmp_path, monkeypatch):
    save(dn.Sequential(dn.ReLU(), IoTower(3)), tmp_path / "m.safetensors")
    monkeypatch.delitem(registry._REGISTRY, "IoTower")  # as in a process that never imported it
    with pytest.raises(FormatError, match=r"unknown layer type 'IoTower'.*import the module"):
        load(tmp_path / "m.safetensors")
