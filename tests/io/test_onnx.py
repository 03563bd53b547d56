"""ONNX export: every layer type and every zoo model passes the full checker and matches
deltanet's float32 outputs in onnxruntime to 1e-5; layers without an equivalent are named."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import deltanet as dn
from deltanet.io.onnx import export_onnx
from deltanet.zoo import MODELS, build_model, default_input_shape

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnx(path, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def export_and_compare(tmp_path, model, shape, batch=3, seed=0) -> onnx.ModelProto:
    """Export, check (full_check), run in onnxruntime at two batch sizes, compare to 1e-5."""
    path = tmp_path / "model.onnx"
    export_onnx(model, path, shape)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    # ONNX's own shape inference agrees with the declared (deltanet's) output shape
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim[1:]]
    assert tuple(dims) == tuple(model.output_shape((1, *shape))[1:])
    model.eval()
    rng = np.random.default_rng(seed)
    for n in (batch, 1):  # the batch axis is dynamic
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x), model(x), rtol=1e-5, atol=1e-5)
    return proto


def with_stats(bn: dn.BatchNormND, seed: int = 1) -> dn.BatchNormND:
    """Running statistics away from their initial 0/1, so that they are really used."""
    rng = np.random.default_rng(seed)
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
    if bn.affine:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features)
        bn.bias.data[...] = rng.standard_normal(bn.num_features)
    return bn


R = np.random.default_rng(0)
LAYERS = {
    "conv1d_groups_dilation_asym_pads": (
        lambda: dn.Conv1D(4, 6, 3, stride=2, padding=((1, 2),), dilation=2, groups=2, rng=R),
        (4, 11),
    ),
    "conv2d_same_stride2": (lambda: dn.Conv2D(2, 4, 3, stride=2, padding="same", rng=R), (2, 9, 8)),
    "conv2d_asym_pads_no_bias": (
        lambda: dn.Conv2D(3, 2, (2, 3), padding=((0, 1), (2, 1)), bias=False, rng=R),
        (3, 6, 5),
    ),
    "conv3d": (lambda: dn.Conv3D(2, 2, (1, 2, 3), padding=1, groups=2, rng=R), (2, 4, 5, 6)),
    "conv_transpose1d_dilation": (
        lambda: dn.ConvTranspose1D(2, 3, 3, stride=2, padding=1, dilation=2, rng=R),
        (2, 7),
    ),
    "conv_transpose2d_groups_output_padding": (
        lambda: dn.ConvTranspose2D(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=R),
        (4, 5, 5),
    ),
    "conv_transpose3d": (lambda: dn.ConvTranspose3D(2, 3, 2, stride=2, rng=R), (2, 3, 3, 3)),
    "maxpool1d_dilation_ceil": (lambda: dn.MaxPool1D(3, 2, dilation=2, ceil_mode=True), (2, 10)),
    "maxpool2d_pad_ceil": (lambda: dn.MaxPool2D(3, 2, padding=1, ceil_mode=True), (2, 8, 8)),
    "maxpool3d": (lambda: dn.MaxPool3D(2), (1, 4, 4, 5)),
    "avgpool1d_exclude_pad": (
        lambda: dn.AvgPool1D(3, 2, padding=1, count_include_pad=False),
        (2, 9),
    ),
    "avgpool2d_ceil_include_pad": (
        lambda: dn.AvgPool2D(3, 2, padding=1, ceil_mode=True, count_include_pad=True),
        (2, 8, 8),
    ),
    "avgpool2d_ceil_exclude_pad": (
        lambda: dn.AvgPool2D(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 8, 8),
    ),
    "avgpool3d_ceil": (lambda: dn.AvgPool3D(2, ceil_mode=True), (2, 5, 5, 5)),
    "global_avg_pool": (lambda: dn.GlobalAvgPool(), (3, 4, 5)),
    "global_max_pool": (lambda: dn.GlobalMaxPool(), (3, 4, 5, 2)),
    "dense": (lambda: dn.Dense(5, 3, rng=R), (5,)),
    "dense_no_bias": (lambda: dn.Dense(5, 3, bias=False, rng=R), (5,)),
    "relu": (lambda: dn.ReLU(), (4,)),
    "sigmoid": (lambda: dn.Sigmoid(), (4,)),
    "tanh": (lambda: dn.Tanh(), (4,)),
    "leaky_relu": (lambda: dn.LeakyReLU(0.2), (4,)),
    "elu": (lambda: dn.ELU(0.7), (4,)),
    "softplus": (lambda: dn.Softplus(), (4,)),
    "softplus_beta_threshold": (lambda: dn.Softplus(2.0, 1.0), (4,)),
    "softmax": (lambda: dn.Softmax(), (4,)),
    "log_softmax_last_axis": (lambda: dn.LogSoftmax(axis=-1), (3, 4)),
    "batchnorm1d_no_affine": (lambda: with_stats(dn.BatchNorm1D(3, affine=False)), (3,)),
    "batchnorm2d": (lambda: with_stats(dn.BatchNorm2D(3)), (3, 4, 4)),
    "batchnorm3d": (lambda: with_stats(dn.BatchNorm3D(2, eps=1e-3)), (2, 3, 2, 2)),
    "dropout": (lambda: dn.Dropout(0.5), (4,)),
    "flatten": (lambda: dn.Flatten(), (2, 3, 4)),
    "flatten_from_2": (lambda: dn.Flatten(2), (2, 3, 4)),
    "reshape": (lambda: dn.Reshape((4, 6)), (2, 3, 4)),
}


BINARY = {
    "qactivation_1bit": (lambda: dn.QActivation(1), (5,)),
    "qactivation_2bit": (lambda: dn.QActivation(2), (3, 4)),
    "qactivation_32bit": (lambda: dn.QActivation(32), (4,)),
    "qdense_1bit": (lambda: dn.QDense(6, 4, rng=R), (6,)),
    "qdense_layer_scaling_no_bias": (lambda: dn.QDense(6, 4, False, scaling="layer", rng=R), (6,)),
    "qdense_3bit_channel": (
        lambda: dn.QDense(6, 4, act_bit=3, weight_bit=3, scaling="channel", rng=R),
        (6,),
    ),
    "qconv1d_channel_scaling_same": (
        lambda: dn.QConv1D(2, 4, 3, padding="same", scaling="channel", rng=R),
        (2, 9),
    ),
    "qconv2d_groups_stride": (
        lambda: dn.QConv2D(4, 4, 3, stride=2, padding=1, groups=2, scaling="layer", rng=R),
        (4, 7, 7),
    ),
    "qconv3d_2bit": (lambda: dn.QConv3D(2, 2, 2, act_bit=2, weight_bit=2, rng=R), (2, 3, 3, 3)),
}


@pytest.mark.parametrize("case", list(BINARY))
def test_binary_layers_export_as_float_equivalents(tmp_path, case):
    build, shape = BINARY[case]
    proto = export_and_compare(tmp_path, build(), shape)
    ops = {n.op_type for n in proto.graph.node}
    if "1bit" in case or case.startswith("qconv1d") or case.startswith("qconv2d"):
        assert "Where" in ops  # sign(0) = +1: ONNX Sign would give 0
    # inputs at exactly 0 (sign(0) = +1) and at the k-bit rounding points
    x = np.array([[0.0, -0.0, 0.5, 1 / 3, -1.0, 2.0]], np.float32)
    layer = dn.QActivation(1)
    export_onnx(layer, tmp_path / "q.onnx", (6,))
    np.testing.assert_array_equal(run_onnx(tmp_path / "q.onnx", x), layer(x))


def test_binary_lenet_with_fresh_statistics_is_exact_without_graph_rewrites(tmp_path):
    """Fresh batch norms (mean 0, var 1) after ±1 convolutions give exact zeros, whose sign
    (+1) is exact in the exported graph; onnxruntime's Conv+BatchNorm fusion may move such
    ties across 0, so this compares with its graph rewrites off, to 0."""
    model = build_model("binary_lenet", seed=1).eval()
    export_onnx(model, tmp_path / "b.onnx", (1, 8, 8))
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        run_onnx(tmp_path / "b.onnx", x, optimize=False), model(x), atol=1e-5
    )


def test_packed_binary_model_exports_as_float_equivalent(tmp_path):
    from deltanet.binary import pack

    model = dn.Sequential(
        dn.Conv2D(1, 4, 3, padding=1, rng=R),
        with_stats(dn.BatchNorm2D(4)),
        dn.QConv2D(4, 70, 3, padding=((0, 1), (1, 0)), bias=False, scaling="channel", rng=R),
        with_stats(dn.BatchNorm2D(70)),
        dn.MaxPool2D(2),
        dn.Flatten(),
        dn.QDense(70 * 4, 8, rng=R),
        dn.Dense(8, 3, rng=R),
    )
    packed = pack(model.eval())
    kinds = {type(layer).__name__ for layer in packed.layers}
    assert {"PackedConv", "PackedDense"} <= kinds
    export_and_compare(tmp_path, packed, (1, 6, 6))


@pytest.mark.parametrize("case", list(LAYERS))
def test_every_layer_type_matches_onnxruntime(tmp_path, case):
    build, shape = LAYERS[case]
    export_and_compare(tmp_path, build(), shape)


def test_pooling_sizes_sweep_with_ceil_mode_and_padding(tmp_path):
    """ceil_mode where the last window would start in the right padding (PyTorch drops it),
    strides larger than the kernel, every padding: sizes and values as deltanet's."""
    failures = []
    for n, k, s, p, layer_kind in itertools.product(
        (4, 5), (1, 2, 3), (1, 2, 3), (0, 1), ("max", "avg", "avg_exclude")
    ):
        if p > k // 2:
            continue
        if layer_kind == "max":
            layer = dn.MaxPool1D(k, s, padding=p, ceil_mode=True)
        else:
            include = layer_kind == "avg"
            layer = dn.AvgPool1D(k, s, padding=p, ceil_mode=True, count_include_pad=include)
        try:
            export_and_compare(tmp_path, layer, (2, n), batch=2)
        except AssertionError as err:
            failures.append(f"{layer_kind} n={n} k={k} s={s} p={p}: {err}")
    assert not failures, "\n".join(failures[:5])


@pytest.mark.parametrize("name", MODELS)
def test_every_zoo_model_matches_onnxruntime(tmp_path, name):
    model = build_model(name, seed=1)
    for i, layer in enumerate(model.layers):  # statistics as training leaves them
        if isinstance(layer, dn.BatchNormND):
            with_stats(layer, seed=i)
    proto = export_and_compare(tmp_path, model, default_input_shape(name), batch=4)
    # names follow the layers: one initializer per state_dict entry, under the same name
    names = {n for n in model.state_dict() if not n.endswith("num_batches_tracked")}
    assert {t.name for t in proto.graph.initializer} >= names
    assert proto.opset_import[0].version == 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_nested_sequential_and_float64_model(tmp_path):
    model = dn.Sequential(
        dn.Sequential(dn.Conv2D(1, 2, 3, rng=R, dtype=np.float64), dn.ReLU()),
        dn.Flatten(),
        dn.Sequential(dn.Dense(2 * 4 * 4, 3, rng=R, dtype=np.float64)),
    )
    path = tmp_path / "m.onnx"
    export_onnx(model, path, (1, 6, 6))
    x = np.random.default_rng(2).standard_normal((2, 1, 6, 6))
    got = run_onnx(path, x.astype(np.float32))
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)
    proto = onnx.load(str(path))
    assert [n.name for n in proto.graph.node][:2] == ["0_0_Conv2D", "0_1_ReLU"]
    assert "0.0.weight" in {t.name for t in proto.graph.initializer}


def test_export_keeps_the_training_mode(tmp_path):
    model = dn.Sequential(dn.Dense(4, 4, rng=R), dn.Dropout(0.5))
    export_onnx(model, tmp_path / "m.onnx", (4,))
    assert model.training and model.layers[1].training


class Custom(dn.Layer):
    def forward(self, x):
        return x


@pytest.mark.parametrize(
    "layer, match",
    [
        (
            Custom(),
            r"no ONNX exporter for Custom \(at 1\); register one with "
            r"@deltanet.io.onnx.onnx_exporter\(Custom\)",
        ),
        (dn.BatchNorm1D(3, track_running_stats=False), r"BatchNorm1D\(num_features=3\)"),
        (dn.Flatten(0), r"Flatten\(start_dim=0\) merges the batch axis"),
    ],
)
def test_layer_without_equivalent_is_named(tmp_path, layer, match):
    with pytest.raises(TypeError, match=match):
        export_onnx(dn.Sequential(dn.ReLU(), layer), tmp_path / "m.onnx", (3,))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("shape", [(), (0, 3), (1.5,), "1,2", [True]])
def test_bad_input_shape(tmp_path, shape):
    with pytest.raises(ValueError, match="export_onnx: input_shape"):
        export_onnx(dn.ReLU(), tmp_path / "m.onnx", shape)


def test_bad_model(tmp_path):
    with pytest.raises(TypeError, match="export_onnx: model must be a deltanet Layer"):
        export_onnx(object(), tmp_path / "m.onnx", (3,))


# --- the command line ------------------------------------------------------------------------


def test_cli_exports_a_saved_model_with_its_run_input_shape(tmp_path, capsys):
    from deltanet.cli.main import main

    model = build_model("cnn1d", seed=3)
    dn.save(model, tmp_path / "m.safetensors", metadata={"run": {"input_shape": [1, 40]}})
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(out)]) == 0
    assert "input (batch, 1, 40)" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((2, 1, 40)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(out, x), model.eval()(x), rtol=1e-5, atol=1e-5)


def test_cli_exports_a_zoo_model_to_onnx_and_torch(tmp_path, capsys):
    from deltanet.cli.main import main
    from deltanet.io.safetensors import read_safetensors

    args = ["export", "mlp", "--onnx", tmp_path / "m.onnx", "--torch", tmp_path / "w.safetensors"]
    assert main([str(a) for a in args]) == 0
    tensors, _ = read_safetensors(tmp_path / "w.safetensors")
    assert set(tensors) == set(build_model("mlp").state_dict())
    x = np.random.default_rng(0).standard_normal((2, 400)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), build_model("mlp")(x), atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["mlp"], "nothing to write"),
        (["mlp", "--torch-template", "t.safetensors", "--onnx", "m.onnx"], "needs --torch"),
        (["no_such_file.safetensors", "--onnx", "m.onnx"], "no model file"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    from deltanet.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_needs_an_input_shape_when_none_was_saved(tmp_path, capsys):
    from deltanet.cli.main import main

    dn.save(build_model("mlp"), tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "o")]) == 2
    assert "give --input-shape" in capsys.readouterr().err
    path = str(tmp_path / "m.safetensors")
    assert main(["export", path, "--onnx", str(tmp_path / "o"), "--input-shape", "400"]) == 0


def test_input_shape_that_the_model_rejects_names_the_layer(tmp_path):
    with pytest.raises(ValueError, match=r"Dense\(in_features=400\): expected input of shape"):
        export_onnx(build_model("lenet5"), tmp_path / "m.onnx", (1, 32, 32))


def test_missing_onnx_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import sys

    from deltanet.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    expected = r'needs the onnx package: pip install "deltanet\[onnx\]"'
    with pytest.raises(ImportError, match=expected):
        export_onnx(build_model("mlp"), tmp_path / "m.onnx", (400,))
    assert main(["export", "mlp", "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "needs the onnx package" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
