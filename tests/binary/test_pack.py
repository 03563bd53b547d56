"""binary/pack.py: packed models equal to the float path in eval mode (every binary layer type,
batch norm folded in a chain, custom blocks, residual blocks, binary_lenet), the report by dotted
names, save/load, size, bad input."""

import numpy as np
import pytest

from deltanet import io
from deltanet.binary import PackedConv, PackedDense, pack, packed_weight_bytes
from deltanet.binary.layers import QActivation, QConv1D, QConv2D, QConv3D, QDense
from deltanet.binary.pack import pack_with_sizes
from deltanet.layers import (
    Add,
    BatchNorm1D,
    BatchNorm2D,
    Concat,
    Dense,
    Flatten,
    Identity,
    Layer,
    ReLU,
    Residual,
    Sequential,
)
from deltanet.zoo import build_model


def with_random_stats(bn, rng):
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
    bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features) * rng.choice([-1, 1])
    bn.bias.data[...] = rng.standard_normal(bn.num_features)
    return bn


@pytest.mark.parametrize("scaling", ["none", "layer", "channel"])
@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda s, r: QDense(100, 7, scaling=s, rng=r), (5, 100)),
        (lambda s, r: QConv1D(5, 4, 3, stride=2, padding=1, scaling=s, rng=r), (2, 5, 12)),
        (lambda s, r: QConv2D(6, 4, 3, padding=1, groups=2, scaling=s, rng=r), (2, 6, 5, 5)),
        (lambda s, r: QConv3D(3, 2, 2, padding="same", dilation=2, scaling=s, rng=r),
         (1, 3, 4, 5, 4)),
    ],
)  # fmt: skip
def test_packed_layer_equals_the_float_path(make, shape, scaling, engine):
    rng = np.random.default_rng(3)
    layer = make(scaling, rng).eval()
    x = rng.standard_normal(shape).astype(np.float32)
    packed = pack(layer)
    assert isinstance(packed, PackedDense if isinstance(layer, QDense) else PackedConv)
    y = packed(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, layer(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_is_folded_and_other_layers_stay(engine):
    rng = np.random.default_rng(4)
    model = Sequential(
        QConv2D(4, 8, 3, padding=1, scaling="channel", rng=rng),
        with_random_stats(BatchNorm2D(8), rng),
        ReLU(),
        Flatten(),
        QDense(8 * 25, 6, bias=False, rng=rng),
        with_random_stats(BatchNorm1D(6), rng),
        Dense(6, 3, rng=rng),
    ).eval()
    x = rng.standard_normal((3, 4, 5, 5)).astype(np.float32)
    packed, report = pack(model, return_report=True)
    kinds = [type(layer).__name__ for layer in packed.layers]
    assert kinds == ["PackedConv", "ReLU", "Flatten", "PackedDense", "Dense"]
    assert report[0].startswith("0: QConv2D(in_channels=4) + BatchNorm2D(num_features=8) ->")
    assert "batch norm folded" in report[0]
    assert report[-1] == "6: Dense(in_features=6) kept as it is"
    np.testing.assert_allclose(packed(x), model(x), rtol=1e-4, atol=1e-4)
    assert packed.layers[-1] is not model.layers[-1]  # a copy: the packed model is independent


class Block(Layer):
    """A block of the user's own: a chain with a batch norm, and a list of layers."""

    def __init__(self, rng):
        super().__init__()
        self.body = Sequential(
            QConv2D(4, 8, 3, padding=1, scaling="layer", rng=rng),
            with_random_stats(BatchNorm2D(8), rng),
        )
        self.head = [QActivation(1), QConv2D(8, 8, 3, padding=1, bias=False, rng=rng), ReLU()]

    def _check_input(self, x):
        return x

    def _forward(self, x):
        y = self.body(x)
        for layer in self.head:
            y = layer(y)
        return y, None


def test_pack_sees_inside_custom_and_residual_blocks(engine):
    rng = np.random.default_rng(6)
    residual = Residual(
        Sequential(QConv2D(8, 8, 3, padding=1, rng=rng), with_random_stats(BatchNorm2D(8), rng)),
        shortcut=QConv2D(8, 8, 1, rng=rng),
    )
    branches = Concat(QConv2D(8, 2, 1, rng=rng), Identity())
    model = Sequential(Block(rng), residual, branches, Flatten(), QDense(10 * 16, 5, rng=rng))
    model.eval()
    x = rng.standard_normal((3, 4, 4, 4)).astype(np.float32)
    packed, report = pack(model, return_report=True)
    np.testing.assert_allclose(packed(x), model(x), rtol=1e-4, atol=1e-4)
    kinds = {name: type(layer).__name__ for name, layer in packed.named_layers()}
    assert kinds == {
        "": "Sequential",
        "0": "Block",
        "0.body": "Sequential",
        "0.body.0": "PackedConv",  # the batch norm folded into it
        "0.head": "LayerList",
        "0.head.0": "QActivation",
        "0.head.1": "PackedConv",
        "0.head.2": "ReLU",
        "1": "Residual",
        "1.block": "Sequential",
        "1.block.0": "PackedConv",
        "1.shortcut": "PackedConv",
        "2": "Concat",
        "2.0": "PackedConv",
        "2.1": "Identity",
        "3": "Flatten",
        "4": "PackedDense",
    }
    children = dict(packed[1].named_children())  # the attributes and the registry agree
    assert children["block"] is packed[1].block and children["shortcut"] is packed[1].shortcut
    assert packed[0].head[1] is dict(packed[0].named_layers())["head.1"]
    assert [line.split(":")[0] for line in report] == [
        "0.body.0", "0.head.0", "0.head.1", "0.head.2", "1.block.0", "1.shortcut", "2.0",
        "2.1", "3", "4",
    ]  # fmt: skip
    assert "batch norm folded" in report[0] and "kept as it is" in report[1]
    assert isinstance(model[0].body[0], QConv2D)  # the model itself is untouched


def test_a_layer_of_your_own_packs_itself_and_a_shared_layer_once():
    class Packable(Layer):
        def __init__(self):
            super().__init__()
            self.inner = QDense(3, 3)

        def _forward(self, x):
            return self.inner(x), None

        def to_packed(self, following):
            return Identity(), False

    shared = QDense(3, 3)
    packed, report = pack(Sequential(Packable(), shared, ReLU(), shared), return_report=True)
    assert report[0] == "0: Packable() -> Identity (1-bit)"
    assert type(packed[0]) is Identity and packed[1] is packed[3]
    assert isinstance(packed[1], PackedDense)


def test_binary_lenet_packed_equals_float_saves_loads_and_is_small(tmp_path, engine):
    rng = np.random.default_rng(5)
    for shape in ((1, 8, 8), (1, 28, 28)):
        model = build_model("binary_lenet", input_shape=shape, seed=0)
        for layer in model.layers:
            if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
                with_random_stats(layer, rng)
        model.eval()
        x = rng.standard_normal((4, *shape)).astype(np.float32)
        packed = pack(model)
        y, y_packed = model(x), packed(x)
        np.testing.assert_allclose(y_packed, y, rtol=1e-3, atol=1e-3)
        assert (y_packed.argmax(1) == y.argmax(1)).all()
    io.save(packed, tmp_path / "packed.safetensors")
    loaded = io.load(tmp_path / "packed.safetensors").eval()  # the kept batch norm: eval mode
    assert loaded.state_dict()["2.weight_bits"].dtype == np.uint64
    np.testing.assert_array_equal(loaded(x), y_packed)
    float_bytes = sum(
        layer.weight.data.astype(np.float32).nbytes
        for layer in model.layers
        if isinstance(layer, (QDense, QConv2D))
    )
    assert float_bytes / packed_weight_bytes(packed) >= 25


def test_bad_input():
    with pytest.raises(ValueError, match=r"pack: Sequential\(2 layers\) has no 1-bit layer"):
        pack(Sequential(Dense(3, 2), QDense(2, 2, weight_bit=2)))
    with pytest.raises(TypeError, match="pack: expected a deltanet Layer"):
        pack("model")


def test_a_sign_right_before_a_1bit_layer_leaves_the_chain():
    """The packed layer signs its own input: sign(sign(x)) = sign(x), so the outputs agree; a
    sign before a float layer, or a k-bit activation, stays."""
    rng = np.random.default_rng(6)
    model = Sequential(
        QActivation(1, approx=True),
        QConv2D(3, 4, 3, padding=1, rng=rng, dtype=np.float64),
        QActivation(1),
        Flatten(),
        QActivation(2),
        Dense(4 * 5 * 5, 3, rng=rng, dtype=np.float64),
    ).eval()
    packed, report = pack(model, return_report=True)
    assert [type(layer).__name__ for layer in packed] == [
        "PackedConv", "QActivation", "Flatten", "QActivation", "Dense"
    ]  # fmt: skip
    assert report[0] == (
        "0: QActivation(act_bit=1) dropped (the packed layer after it takes the signs itself)"
    )
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_array_equal(packed(x), model(x))


def test_sizes_count_a_layer_held_twice_once():
    """A float layer in two branches holds its tensors once: the fork around it holds none."""
    dense = Dense(4, 4, rng=np.random.default_rng(0))
    model = Sequential(QDense(4, 4, rng=np.random.default_rng(1)), Add(dense, dense))
    _, _, sizes = pack_with_sizes(model)
    weights = dense.weight.data.nbytes + dense.bias.data.nbytes
    assert sizes["float layers"] == (1, weights, weights)
