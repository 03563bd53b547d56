"""ONNX export of blocks: Residual, Add, Concat, Identity and a user's block with the exporter
it registers, checked (full_check) and run in onnxruntime against deltanet to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.io.onnx import Graph, Site, export_onnx, exporter_for, onnx_exporter
from tests.io.test_architecture import IoConvBlock, IoTower
from tests.io.test_onnx import export_and_compare, with_stats

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

R = np.random.default_rng(3)


@onnx_exporter(IoConvBlock)
def export_conv_block(layer: IoConvBlock, graph: Graph, site: Site) -> str:
    x, shape = site.x, site.shape
    for name in ("conv", "bn", "act", "drop"):
        x, shape = graph.add(getattr(layer, name), site.child(name), x, shape)
    return x


@onnx_exporter(IoTower)
def export_tower(layer: IoTower, graph: Graph, site: Site) -> str:
    x, shape = site.x, site.shape
    for i, (conv, norm) in enumerate(zip(layer.convs, layer.norms)):
        x, shape = graph.add(conv, site.child(f"convs.{i}"), x, shape)
        x, shape = graph.add(norm, site.child(f"norms.{i}"), x, shape)
    return x


def stats(model: dn.Layer) -> dn.Layer:
    """Every batch norm with running statistics away from 0/1."""
    for i, layer in enumerate(model.layers_tree()):
        if isinstance(layer, dn.BatchNormND):
            with_stats(layer, seed=i)
    return model


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> dn.Sequential:
    return dn.Sequential(dn.Conv2D(c_in, c_out, 3, stride, padding=1, rng=R), dn.BatchNorm2D(c_out))


BLOCKS = {
    "residual_identity": (
        lambda: dn.Residual(dn.Sequential(conv_bn(3, 3), dn.ReLU(), conv_bn(3, 3))),
        (3, 6, 6),
    ),
    "residual_1x1_conv_shortcut": (
        lambda: dn.Residual(
            dn.Sequential(conv_bn(3, 4, 2), dn.ReLU(), conv_bn(4, 4)),
            dn.Sequential(dn.Conv2D(3, 4, 1, 2, bias=False, rng=R), dn.BatchNorm2D(4)),
        ),
        (3, 7, 7),
    ),
    "add_three_branches": (
        lambda: dn.Add(
            conv_bn(3, 2), dn.Conv2D(3, 2, 1, rng=R), dn.Sequential(dn.Tanh(), conv_bn(3, 2))
        ),
        (3, 5, 5),
    ),
    "add_identity_dense": (lambda: dn.Add(dn.Dense(4, 4, rng=R), dn.Identity()), (4,)),
    "concat_channels": (
        lambda: dn.Concat(conv_bn(3, 2), dn.Identity(), dn.MaxPool2D(3, 1, padding=1)),
        (3, 5, 5),
    ),
    "concat_last_axis": (lambda: dn.Concat(dn.Identity(), dn.Sigmoid(), axis=2), (2, 3)),
    "identity": (lambda: dn.Identity(), (3, 4)),
    "custom_block": (lambda: IoConvBlock(3, 5, p=0.5), (3, 6, 6)),
    "custom_list_attributes": (lambda: IoTower(3, depth=3), (3, 4, 4)),
    "resnet_stage": (
        lambda: dn.Sequential(
            IoConvBlock(1, 4),
            dn.Residual(dn.Sequential(conv_bn(4, 4), dn.ReLU(), IoTower(4))),
            dn.ReLU(),
            dn.Concat(dn.Residual(conv_bn(4, 4)), dn.AvgPool2D(3, 1, padding=1)),
            dn.GlobalAvgPool(),
            dn.Flatten(),
            dn.Dense(8, 3, rng=R),
        ),
        (1, 8, 8),
    ),
}


@pytest.mark.parametrize("case", list(BLOCKS))
def test_blocks_match_onnxruntime(tmp_path, case):
    build, shape = BLOCKS[case]
    model = stats(build())
    proto = export_and_compare(tmp_path, model, shape)
    # one initializer per parameter and statistic, under its state_dict name
    names = {n for n in model.state_dict() if not n.endswith("num_batches_tracked")}
    assert {t.name for t in proto.graph.initializer} >= names


def test_residual_nodes_are_named_after_the_tree(tmp_path):
    build, shape = BLOCKS["residual_1x1_conv_shortcut"]
    proto = export_and_compare(tmp_path, stats(build()), shape)
    nodes = [n.name for n in proto.graph.node]
    assert "block_0_0_Conv2D" in nodes and "shortcut_0_Conv2D" in nodes
    assert [n.op_type for n in proto.graph.node if n.name == "Residual"] == ["Add"]


def test_export_keeps_every_layer_mode_inside_blocks(tmp_path):
    model = dn.Sequential(dn.Residual(IoConvBlock(3, 3, p=0.5)), dn.ReLU())
    model.eval()
    model.layers[0].block.drop.train()  # a mixed state: restored as it was
    export_onnx(model, tmp_path / "m.onnx", (3, 4, 4))
    modes = {name: layer.training for name, layer in model.named_layers()}
    assert modes.pop("0.block.drop") is True and not any(modes.values())


def test_a_subclass_uses_its_parents_exporter_unless_it_registers_one(tmp_path):
    class MyConv(dn.Conv2D):
        pass

    assert exporter_for(MyConv(1, 2, 3)) is exporter_for(dn.Conv2D(1, 2, 3))
    export_and_compare(tmp_path, MyConv(1, 2, 3, rng=R), (1, 5, 5))


def test_a_block_without_exporter_is_named_with_the_fix(tmp_path):
    class Block(dn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = dn.Conv2D(1, 1, 1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(
        TypeError, match=r"no ONNX exporter for Block \(at 0.block\).*onnx_exporter"
    ):
        export_onnx(dn.Sequential(dn.Residual(Block())), tmp_path / "m.onnx", (1, 3, 3))
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_exporter_takes_only_layer_classes():
    with pytest.raises(TypeError, match="onnx_exporter: expected Layer subclasses"):
        onnx_exporter(int)
