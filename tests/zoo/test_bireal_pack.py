"""Packed inference through shortcuts: ``pack`` of the Bi-Real zoo models.

Each binary conv becomes a PackedConv with its batch norm folded, the sign before it leaves
(the packed conv signs its input itself), the shortcuts (identity; average pool, 1x1 conv, batch
norm) and the additions stay float, and the packed model gives the float model's outputs in
eval mode: to 1e-12 in float64, through zero padding, strides and odd sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.binary import PackedConv
from deltanet.binary.layers import QConvND
from deltanet.binary.pack import pack, pack_with_sizes
from deltanet.zoo import build_model
from tests.binary.test_pack import with_random_stats

SHAPES = {"bireal_resnet1d": (2, 11), "bireal_resnet20": (3, 9, 8)}


def bireal(name: str, shape=None, dtype=np.float64, **options) -> dn.Sequential:
    """A Bi-Real model in eval mode with every batch norm's statistics and affine random."""
    shape = shape or SHAPES[name]
    options = options or {"channels": (4, 8, 8), "blocks": 1}
    model = build_model(name, input_shape=shape, num_classes=5, dtype=dtype, **options)
    rng = np.random.default_rng(3)
    for _, layer in model.named_layers():
        if isinstance(layer, dn.BatchNormND):
            with_random_stats(layer, rng)
    return model.eval()


@pytest.mark.parametrize("name", SHAPES)
def test_binary_convs_pack_and_shortcuts_stay_float(name, engine):
    model = bireal(name)
    packed, report = pack(model, return_report=True)
    blocks = [(a, b) for a, b in zip(model, packed) if isinstance(a, dn.Residual)]
    assert len(blocks) == 6
    for float_block, packed_block in blocks:
        assert [type(layer) for layer in packed_block.block] == [PackedConv]
        assert packed_block.block[0].stride == float_block.block[1].stride
        if float_block.shortcut is None:
            assert packed_block.shortcut is None
        else:  # average pool, 1x1 conv, batch norm: float, the same weights
            assert [type(s) for s in packed_block.shortcut] == [
                type(s) for s in float_block.shortcut
            ]
            np.testing.assert_array_equal(
                packed_block.shortcut[-2].weight.data, float_block.shortcut[-2].weight.data
            )
    assert type(packed[0]) is type(model[0]) and type(packed[-1]) is dn.Dense
    folded = [line for line in report if "batch norm folded" in line]
    assert len(folded) == 6 and all(".block.1: QConv" in line for line in folded)
    assert sum("dropped" in line for line in report) == 6
    assert any(line.startswith("0: Conv") and "kept as it is" in line for line in report)
    x = np.random.default_rng(4).standard_normal((5, *SHAPES[name]))
    y = model(x)
    assert np.abs(y).max() > 0.1
    np.testing.assert_allclose(packed(x), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 40), (1, 28, 28)])
def test_full_size_models_pack_to_the_same_outputs(shape):
    """The zoo's own widths (16..128 channels: words of 64 bits, part-filled), float32: the
    packed affine rounds differently, so the logits agree to float32's precision."""
    name = "bireal_resnet1d" if len(shape) == 2 else "bireal_resnet20"
    model = bireal(name, shape, dtype=np.float32, blocks=1)
    x = np.random.default_rng(5).standard_normal((3, *shape)).astype(np.float32)
    packed = pack(model)
    np.testing.assert_allclose(packed(x), model(x), rtol=1e-4, atol=1e-4)


def test_sizes_cover_the_whole_model(tmp_path):
    model = bireal("bireal_resnet20")
    packed, _, sizes = pack_with_sizes(model)
    binary = [layer for _, layer in model.named_layers() if isinstance(layer, QConvND)]
    n, before, after = sizes["1-bit layers"]
    assert n == 6 and before == sum(q.weight.data.nbytes for q in binary)
    packed_convs = [layer for _, layer in packed.named_layers() if isinstance(layer, PackedConv)]
    assert after == sum(v.nbytes for c in packed_convs for v in c.state_dict().values())
    norms = [r.block[2] for r in model if isinstance(r, dn.Residual)]
    bn_bytes = sum(v.nbytes for bn in norms for v in bn.state_dict().values())
    assert sizes["folded batch norms"][:2] == (6, bn_bytes)
    assert sizes["folded batch norms"][2] == 0 and sizes["dropped signs"][0] == 6
    n_float, float_before, float_after = sizes["float layers"]
    assert float_before == float_after > 0
    total = sum(v.nbytes for v in model.state_dict().values())
    assert sum(s[1] for s in sizes.values()) == total  # every tensor is counted once
    assert sum(s[2] for s in sizes.values()) == sum(v.nbytes for v in packed.state_dict().values())
    dn.save(packed, tmp_path / "packed.safetensors")
    again = dn.load(tmp_path / "packed.safetensors").eval()
    x = np.random.default_rng(6).standard_normal((2, *SHAPES["bireal_resnet20"]))
    np.testing.assert_array_equal(again(x), packed(x))


def test_packed_model_exports_to_onnx(tmp_path):
    """The packed convs export as float equivalents (signs, ±1 weights, affine) between the
    float shortcuts and additions; onnxruntime gives the packed model's outputs."""
    pytest.importorskip("onnxruntime")
    from tests.io.test_onnx import export_and_compare

    packed = pack(bireal("bireal_resnet20", dtype=np.float32))
    proto = export_and_compare(tmp_path, packed, SHAPES["bireal_resnet20"], batch=3)
    assert {"Where", "Add", "AveragePool"} <= {node.op_type for node in proto.graph.node}
