"""The layer tree: children registered on assignment, one walk for names, modes and state."""

import numpy as np
import pytest

import deltanet as dn
from deltanet.layers.base import Layer, LayerList, mode
from deltanet.layers.registry import layer_from_dict, layer_to_dict, register_layer


class Block(Layer):
    """The custom block of issue 14: conv, batch norm, ReLU, dropout, plus the input."""

    def __init__(self, channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.conv = dn.Conv2D(channels, channels, 3, padding=1, rng=seed)
        self.bn = dn.BatchNorm2D(channels)
        self.relu = dn.ReLU()
        self.drop = dn.Dropout(0.5, rng=seed)

    def _forward(self, x):
        h = self.drop(self.relu(self.bn(self.conv(x))))
        return h + x, None

    def _backward(self, dy, cache, input_grad):
        d = self.conv.backward(self.bn.backward(self.relu.backward(self.drop.backward(dy))))
        return d + dy

    def get_config(self):
        return {"channels": self.channels}


class TwoLists(Layer):
    """A layer holding two plain lists of layers (the lost-weights case of issue 14)."""

    def __init__(self) -> None:
        super().__init__()
        self.left = [dn.Dense(3, 3, rng=1)]
        self.right = [dn.Dense(3, 3, rng=2), dn.Dense(3, 3, rng=3)]

    def _forward(self, x):
        a = self.left[0](x)
        b = self.right[1](self.right[0](x))
        return a + b, None

    def _backward(self, dy, cache, input_grad):
        da = self.left[0].backward(dy)
        db = self.right[0].backward(self.right[1].backward(dy))
        return da + db


def test_eval_reaches_every_layer_inside_a_custom_block_and_evaluate_is_deterministic():
    model = dn.Sequential(Block(), dn.Flatten(), dn.Dense(3 * 4 * 4, 2, rng=0))
    x = np.random.default_rng(0).standard_normal((6, 3, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 0, 1, 1, 0])
    model(x)  # one training-mode pass: running statistics move away from their start
    model.eval()
    assert all(not layer.training for layer in model.layers_tree())
    first = dn.evaluate(model, "cross_entropy", x, y)
    second = dn.evaluate(model, "cross_entropy", x, y)
    assert first == second
    model.train()
    assert all(layer.training for layer in model.layers_tree())


def test_list_attributes_get_unique_names_and_state_dict_keeps_every_weight():
    layer = TwoLists()
    names = [n for n, _ in layer.named_parameters()]
    assert names == [
        "left.0.weight", "left.0.bias",
        "right.0.weight", "right.0.bias", "right.1.weight", "right.1.bias",
    ]  # fmt: skip
    assert isinstance(layer.right, LayerList) and len(layer.right) == 2
    assert len(layer.state_dict()) == 6


def test_named_layers_walks_the_tree_in_pre_order_with_dotted_names():
    model = dn.Sequential(Block(), dn.Sequential(dn.ReLU()))
    names = [n for n, _ in model.named_layers()]
    assert names == ["", "0", "0.conv", "0.bn", "0.relu", "0.drop", "1", "1.0"]
    assert [type(c).__name__ for c in model.children()] == ["Block", "Sequential"]


def test_reassigning_or_deleting_an_attribute_updates_the_registry():
    block = Block()
    block.drop = dn.Identity()
    assert [n for n, _ in block.named_children()] == ["conv", "bn", "relu", "drop"]
    assert type(block.drop).__name__ == "Identity"
    block.conv = None
    assert "conv.weight" not in block.state_dict()
    del block.bn
    assert [n for n, _ in block.named_children()] == ["relu", "drop"]


def test_a_shared_layer_counts_its_parameters_once():
    dense = dn.Dense(3, 3, rng=0)
    model = dn.Sequential(dense, dn.ReLU(), dense)
    assert model.num_parameters() == 12
    assert len(model.parameters()) == 2


def test_mode_restores_each_layers_own_mode():
    model = dn.Sequential(Block(), dn.Dropout(0.1))
    model[1].eval()
    with mode(model, training=False):
        assert not any(layer.training for layer in model.layers_tree())
    assert model[0].drop.training and not model[1].training


def test_output_shape_runs_inner_batch_norm_in_eval_mode_and_restores_modes():
    model = dn.Sequential(Block(), dn.Flatten())
    assert model.output_shape((1, 3, 4, 4)) == (1, 48)
    assert model[0].bn.training


def test_backward_checks_dy_shape_once_for_every_layer():
    for layer, x in (
        (dn.Dense(3, 2), np.ones((4, 3), np.float32)),
        (dn.ReLU(), np.ones((4, 3), np.float32)),
        (dn.BatchNorm1D(3), np.ones((4, 3), np.float32)),
        (dn.Dropout(0.2), np.ones((4, 3), np.float32)),
        (dn.Reshape((3, 1)), np.ones((4, 3), np.float32)),
        (Block(), np.ones((2, 3, 4, 4), np.float32)),
    ):
        y = layer(x)
        with pytest.raises(ValueError, match=r"expected dy of shape .* Received: \(1, 1\)"):
            layer.backward(np.ones((1, 1), np.float32))
        with pytest.raises(ValueError, match="Received: list"):
            layer.backward([1.0])
        assert layer.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("layer", [dn.ReLU(), dn.Dense(3, 3), dn.Sequential(dn.Dense(3, 3))])
def test_every_layer_accepts_input_grad_false(layer):
    x = np.ones((2, 3), np.float32)
    layer(x)
    assert layer.backward(np.ones((2, 3), np.float32), input_grad=False) is None


def test_backward_before_forward_names_the_layer():
    with pytest.raises(ValueError, match=r"Block\(channels=3\): backward\(\) called before"):
        Block().backward(np.ones((1, 3, 4, 4), np.float32))


def test_a_layer_without_its_own_forward_says_what_to_define():
    class Empty(Layer):
        pass

    with pytest.raises(NotImplementedError, match="must define _forward"):
        Empty()(np.ones((1, 2), np.float32))


def test_register_layer_lets_config_rebuild_a_custom_class_and_refuses_collisions():
    @register_layer(name="TestTreeBlock")
    class MyBlock(Block):
        pass

    again = layer_from_dict(layer_to_dict(MyBlock(channels=2)))
    assert type(again) is MyBlock and again.channels == 2
    with pytest.raises(ValueError, match="'TestTreeBlock' is taken"):

        @register_layer(name="TestTreeBlock")
        class Other(Layer):
            pass

    with pytest.raises(
        TypeError, match="Block is not a registered layer.*@deltanet.register_layer"
    ):
        layer_to_dict(Block())  # the parent class itself was never registered
    with pytest.raises(TypeError, match="expected a subclass of deltanet.Layer"):
        register_layer(int)


def test_unknown_class_in_a_config_says_to_import_its_module():
    with pytest.raises(ValueError, match="unknown layer type 'Nope'.*import the module"):
        layer_from_dict({"class": "Nope", "config": {}})


def test_a_replaced_child_keeps_its_place_and_its_siblings_order():
    model = Block()
    model.bn = dn.Identity()
    assert [n for n, _ in model.named_children()] == ["conv", "bn", "relu", "drop"]


def test_a_layer_written_before_the_contract_still_runs_inside_a_sequential():
    class OldStyle(Layer):  # forward/backward overridden, no input_grad
        def forward(self, x):
            self._cache = x
            return 2 * x

        def backward(self, dy):
            return 2 * dy

    model = dn.Sequential(dn.Dense(2, 2, rng=0), OldStyle())
    x = np.ones((3, 2), np.float32)
    model(x)
    dx = model.backward(np.ones((3, 2), np.float32))
    assert dx.shape == (3, 2)
    assert model.backward(np.ones((3, 2), np.float32), input_grad=False) is None
    assert OldStyle().backward(np.ones(2), input_grad=False) is None
