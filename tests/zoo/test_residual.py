"""The residual zoo models (resnet1d, resnet20) and their Bi-Real twins: layout, argument errors,
central-difference gradients, save/load and ONNX, on small instances (tens of channels at most).

PyTorch parity is in ``test_residual_torch.py``; packed inference in ``test_bireal_pack.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.binary.layers import QActivation, QConvND
from deltanet.cli import main
from deltanet.optim import SGD
from deltanet.zoo import build_model
from tests.utils import check_layer_grads

RESIDUAL = ("resnet1d", "resnet20", "bireal_resnet1d", "bireal_resnet20")
# Small instances: two stages (an identity block, then a projection), odd sizes (ceil pooling).
SMALL = {"channels": (3, 4), "blocks": 1}
SHAPES = {"resnet1d": (2, 11), "resnet20": (2, 9, 8)}


def small(name: str, dtype=np.float64, seed: int = 0) -> dn.Sequential:
    shape = SHAPES[name.removeprefix("bireal_")]
    return build_model(name, input_shape=shape, num_classes=3, seed=seed, dtype=dtype, **SMALL)


def data(name: str, n: int = 4, seed: int = 1) -> np.ndarray:
    shape = SHAPES[name.removeprefix("bireal_")]
    return np.random.default_rng(seed).standard_normal((n, *shape))


def residuals(model: dn.Sequential) -> list[dn.Residual]:
    return [layer for layer in model if isinstance(layer, dn.Residual)]


def test_resnet20_is_he_et_al():
    """3 stages x 3 basic blocks of 16/32/64, stride 2 at stages 2 and 3, two projections."""
    model = build_model("resnet20")
    blocks = residuals(model)
    assert len(blocks) == 9
    assert [b.block[0].out_channels for b in blocks] == [16] * 3 + [32] * 3 + [64] * 3
    assert [b.block[0].stride for b in blocks] == [(2,) * 2 if i in (3, 6) else (1, 1)
                                                   for i in range(9)]  # fmt: skip
    projections = [i for i, b in enumerate(blocks) if b.shortcut is not None]
    assert projections == [3, 6]
    assert blocks[3].shortcut[0].kernel_size == (1, 1)
    convs = [layer for _, layer in model.named_layers() if isinstance(layer, dn.ConvND)]
    assert len(convs) == 19 + 2  # stem + 18 (with the dense: 20 weighted layers), 2 projections
    assert model(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_the_1x28x28_variant_is_the_same_net():
    a = build_model("resnet20", input_shape=(1, 28, 28))
    b = build_model("resnet20")
    assert a.num_parameters() == b.num_parameters() - 2 * 16 * 9  # only the stem's C_in differs
    shapes = _shapes(a, (1, 1, 28, 28))
    assert (1, 16, 28, 28) in shapes and (1, 32, 14, 14) in shapes and (1, 64, 7, 7) in shapes


def _shapes(model: dn.Sequential, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    out = []
    for layer in model:
        shape = layer.output_shape(shape)
        out.append(shape)
    return out


@pytest.mark.parametrize("twin", ["resnet1d", "resnet20"])
def test_bireal_twins_share_the_stage_layout(twin):
    """Each float basic block (two convs) is two Bi-Real blocks with the same widths and
    strides; every binary conv is 1-bit both ways with channel scaling, after an ApproxSign."""
    model, float_model = build_model(f"bireal_{twin}"), build_model(twin)
    convs = [b.block[1] for b in residuals(model)]
    float_convs = [c for b in residuals(float_model) for c in (b.block[0], b.block[3])]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (c.in_channels, c.out_channels, c.stride) for c in float_convs
    ]
    assert all(isinstance(c, QConvND) and c.is_binary and c.scaling == "channel" for c in convs)
    signs = [b.block[0] for b in residuals(model)]
    assert all(isinstance(s, QActivation) and s.approx for s in signs)
    assert not any(isinstance(layer, dn.ReLU) for _, layer in model.named_layers())
    assert not any(isinstance(layer, QConvND) for layer in model)  # stem and head are float


@pytest.mark.parametrize("name", RESIDUAL)
def test_summary_lists_every_block(name, capsys):
    main(["summary", "--model", name])
    out = capsys.readouterr().out
    count = f"{build_model(name).num_parameters():,}"
    assert f"Total params: {count}" in out and "Residual(block=" in out


@pytest.mark.parametrize(
    "name, kwargs, error, match",
    [
        ("resnet20", {"input_shape": (3, 4, 4)}, ValueError, "resnet20: every spatial size must "
         r"be at least 8. Received: \(3, 4, 4\)"),
        ("bireal_resnet20", {"input_shape": (3, 32)}, ValueError,
         r"bireal_resnet20: expected an input shape \(C, H, W\)"),
        ("resnet1d", {"input_shape": (1, 28, 28)}, ValueError, r"resnet1d: .*\(C, L\).*28"),
        ("bireal_resnet1d", {"input_shape": (1, 7)}, ValueError, "at least 8"),
        ("resnet20", {"channels": 16}, ValueError, "resnet20: channels must be a tuple"),
        ("resnet1d", {"channels": (8, 0)}, ValueError, r"positive ints. Received: \(8, 0\)"),
        ("bireal_resnet20", {"blocks": 0}, ValueError, "bireal_resnet20: blocks must be a "
         "positive int. Received: 0"),
        ("resnet20", {"depth": 56}, ValueError, "Valid options: channels, blocks, dtype"),
        ("resnet20", {"input_shape": "3x32x32"}, TypeError, "tuple of ints"),
    ],
)  # fmt: skip
def test_bad_arguments_name_the_model_and_what_was_received(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_model(name, **kwargs)


@pytest.mark.parametrize("name", ["resnet1d", "resnet20"])
def test_float_gradients_by_central_differences(name):
    """δx and every parameter's gradient of the whole net (training mode: batch statistics)."""
    check_layer_grads(small(name), data(name), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", ["bireal_resnet1d", "bireal_resnet20"])
def test_bireal_wiring_by_central_differences(name):
    """Sign has derivative 0 almost everywhere, so no central difference can check an
    ApproxSign/STE gradient (PyTorch parity does, in test_residual_torch.py). With every
    quantizer set to 32 bits (the identity both ways) the same tree of layers, shortcuts,
    pools and batch norms must pass the exact check."""
    model = small(name)
    for _, layer in model.named_layers():
        if isinstance(layer, QActivation):
            layer.act_bit, layer.approx = 32, False
        elif isinstance(layer, QConvND):
            layer.act_bit = layer.weight_bit = 32
    check_layer_grads(model, data(name), rtol=1e-5, atol=1e-8)


def trained(name: str, dtype=np.float32) -> dn.Sequential:
    """A small instance after two SGD steps: weights and running statistics have moved."""
    model = small(name, dtype=dtype)
    x, y = data(name, 8).astype(dtype), np.arange(8) % 3
    dn.fit(model, "cross_entropy", SGD(model, lr=0.1), (x, y), epochs=1, batch_size=4,
           verbose=0)  # fmt: skip
    return model.eval()


@pytest.mark.parametrize("name", RESIDUAL)
def test_save_load_gives_bit_equal_outputs(name, tmp_path):
    model = trained(name)
    dn.save(model, tmp_path / "m.safetensors")
    again = dn.load(tmp_path / "m.safetensors").eval()
    x = data(name, 5, seed=7).astype(np.float32)
    np.testing.assert_array_equal(again(x), model(x))
    assert again.get_config() == model.get_config()


@pytest.mark.parametrize("name", RESIDUAL)
def test_onnx_export_matches_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    from tests.io.test_onnx import export_and_compare

    model = trained(name)
    proto = export_and_compare(tmp_path, model, SHAPES[name.removeprefix("bireal_")], batch=4)
    ops = {node.op_type for node in proto.graph.node}
    assert {"Add", "GlobalAveragePool", "BatchNormalization"} <= ops
    if name.startswith("bireal"):
        assert {"Where", "AveragePool"} <= ops  # the signs; the downsampling shortcut
