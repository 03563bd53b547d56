"""Winograd convolution (``fast/winograd.py``, ``winograd_numba``): forward, δx and ∂L/∂W.

Against the GEMM path and PyTorch in float64 (tight) and float32, for every padding and groups
case that 3x3 stride 1 allows, F(2x2, 3x3) and F(4x4, 3x3) both, with the NumPy transforms and
the compiled ones; the float32 error relative to a float64 reference is bounded (1e-5 on
unit-variance data, ``docs/convolution.md``); the layers' ``algorithm`` argument.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from deltanet.fast import plan, winograd
from deltanet.fast.conv import conv_backward, conv_forward
from deltanet.layers.conv import Conv1D, Conv2D, ConvND, ConvTranspose2D
from deltanet.layers.registry import layer_from_dict, layer_to_dict
from deltanet.ops.conv import ConvPath, conv_window
from deltanet.ops.window import resolve_padding
from tests.ops.test_conv import assert_close, make, torch_conv
from tests.utils import check_layer_grads, torch_or_skip

# x shape, w shape, padding, groups, bias: every padding 3x3 stride 1 allows, odd sizes, batch 1
CASES = [
    pytest.param((2, 3, 8, 8), (4, 3, 3, 3), 0, 1, True, id="p0"),
    pytest.param((2, 3, 7, 9), (5, 3, 3, 3), 1, 1, True, id="p1-odd"),
    pytest.param((1, 2, 5, 6), (3, 2, 3, 3), 2, 1, False, id="p2-b1-nobias"),
    pytest.param((2, 4, 9, 7), (6, 4, 3, 3), "same", 1, True, id="same"),
    pytest.param((1, 2, 6, 11), (2, 2, 3, 3), ((1, 0), (2, 1)), 1, True, id="asym"),
    pytest.param((2, 3, 5, 5), (2, 3, 3, 3), ((0, 2), (2, 0)), 1, True, id="asym-02"),
    pytest.param((1, 3, 4, 4), (2, 3, 3, 3), 3, 1, True, id="p3-wider-than-the-kernel"),
    pytest.param((2, 4, 10, 10), (6, 2, 3, 3), 1, 2, True, id="g2"),
    pytest.param((1, 6, 7, 5), (6, 1, 3, 3), "same", 6, False, id="depthwise"),
    pytest.param((2, 6, 6, 9), (3, 2, 3, 3), ((2, 1), (0, 1)), 3, True, id="g3-asym"),
    pytest.param((3, 2, 3, 3), (2, 2, 3, 3), 0, 1, True, id="one-output"),
]  # fmt: skip


@pytest.fixture(params=[2, 4], ids=["F2", "F4"])
def tile(request, monkeypatch):
    """F(2x2, 3x3) or F(4x4, 3x3), whatever the shape would pick."""
    monkeypatch.setattr(winograd, "tile_size", lambda out: request.param)
    return request.param


def _run(x, w, b, padding, groups, algorithm, dy):
    y, cache = conv_forward(x, w, b, 1, padding, 1, groups, algorithm=algorithm)
    return (y, *conv_backward(dy, cache)), cache


@pytest.mark.parametrize("x_shape, w_shape, padding, groups, bias", CASES)
def test_winograd_matches_the_gemm_path_and_torch_in_float64(
    engine, tile, x_shape, w_shape, padding, groups, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    win = conv_window(x, w, 1, padding, 1, groups)
    dy = np.random.default_rng(1).standard_normal((x.shape[0], w.shape[0], *win.out))
    got, cache = _run(x, w, b, padding, groups, "winograd", dy)
    assert cache.path is ConvPath.WINOGRAD and cache.saved.shape[0] == (tile + 2) ** 2
    gemm, _ = _run(x, w, b, padding, groups, "gemm", dy)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, gemm):
        assert (a is None) == (e is None), name
        if e is not None:
            assert a.dtype == np.float64 and a.shape == e.shape, name
            assert_close(a, e, 1e-11, name)
    torch = torch_or_skip()
    pads = resolve_padding(padding, x.shape[2:], (3, 3), (1, 1), (1, 1))
    ref = torch_conv(torch, x, w, b, dy, 1, pads, 1, groups)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        if e is not None:
            assert_close(a, e, 1e-11, name)


@pytest.mark.parametrize("x_shape, w_shape, padding, groups, bias", CASES)
def test_winograd_float32_matches_torch(engine, tile, x_shape, w_shape, padding, groups, bias):
    torch = torch_or_skip()
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None, np.float32)
    win = conv_window(x, w, 1, padding, 1, groups)
    dy = np.random.default_rng(1).standard_normal((x.shape[0], w.shape[0], *win.out))
    dy = dy.astype(np.float32)
    got, _ = _run(x, w, b, padding, groups, "winograd", dy)
    pads = resolve_padding(padding, x.shape[2:], (3, 3), (1, 1), (1, 1))
    ref = torch_conv(torch, x, w, b, dy, 1, pads, 1, groups)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        if e is not None:
            assert a.dtype == np.float32, name
            assert_close(a, e, 1e-4, name)


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """The largest error relative to the reference's largest entry."""
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("groups", [1, 4])
def test_winograd_float32_error_against_float64_is_at_most_1e_5(engine, tile, groups):
    """Unit-variance x, w and δy; y, δx and ∂L/∂W within 1e-5 of the float64 reference's
    largest entry (docs/convolution.md lists the numbers next to im2col's)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 32, 16, 16))
    w = rng.standard_normal((32, 32 // groups, 3, 3))
    dy = rng.standard_normal((4, 32, 16, 16))
    ref, _ = _run(x, w, None, 1, groups, "gemm", dy)
    got, _ = _run(*(a.astype(np.float32) for a in (x, w)), None, 1, groups, "winograd",
                  dy.astype(np.float32))  # fmt: skip
    for name, a, e in zip(("y", "dx", "dw"), got, ref):
        assert relative_error(a, e) <= 1e-5, name


def test_the_weight_gradient_alone(numba_on):
    """A first layer's backward (no δx) gives the same ∂L/∂W and bias gradient."""
    x, w, b = make((2, 3, 9, 9), (4, 3, 3, 3), 4)
    y, cache = conv_forward(x, w, b, padding=1, algorithm="winograd")
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx, dw, db = conv_backward(dy, cache, input_grad=False)
    _, dw2, db2 = conv_backward(dy, conv_forward(x, w, b, padding=1, algorithm="gemm")[1])
    assert dx is None
    assert_close(dw, dw2, 1e-11, "dw")
    assert_close(db, db2, 1e-11, "db")


def test_tile_size_picks_fewer_gemm_columns():
    assert winograd.tile_size((32, 32)) == 4  # 64 tiles x 36 < 256 tiles x 16
    assert winograd.tile_size((2, 2)) == 2  # one tile either way: 16 < 36
    assert winograd.tile_size((4, 4)) == 4  # 36 < 4 x 16
    assert winograd.tile_size((2, 9)) == 2  # 5 tiles x 16 = 80 < 3 x 36


def test_the_transform_matrices_compute_a_3_tap_correlation():
    """Aᵀ[(G g) ⊙ (Bᵀ d)] is the 1-D correlation of d with g (Lavin & Gray's F(m, 3))."""
    rng = np.random.default_rng(0)
    for m in (2, 4):
        bt, g, at = winograd.matrices(m)
        d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
        expected = np.array([d[i : i + 3] @ k for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), expected, atol=1e-12)


# --- the plan and the algorithm argument -----------------------------------------------------


def _path(x_shape, w_shape, padding=1, groups=1, algorithm="auto", stride=1, dilation=1):
    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
    win = conv_window(x, w, stride, padding, dilation, groups)
    return plan.conv_path(x, w, win, groups, algorithm)


def test_auto_keeps_the_gemm_path_and_winograd_runs_by_hand(numba_on):
    """The GEMM path measured faster on the 3x3 layers tried (docs/performance.md)."""
    assert _path((32, 64, 32, 32), (64, 64, 3, 3)) is ConvPath.CHUNKED
    assert _path((32, 64, 32, 32), (64, 64, 3, 3), algorithm="gemm") is ConvPath.CHUNKED
    assert _path((2, 8, 8, 8), (4, 8, 3, 3), algorithm="winograd") is ConvPath.WINOGRAD
    assert _path((2, 8, 8, 8), (4, 8, 3, 3), algorithm="direct") is ConvPath.DIRECT
    assert _path((2, 8, 8, 8), (4, 8, 3, 3), algorithm="gemm") is ConvPath.GEMM


def test_the_table_switch_sends_wide_3x3_layers_to_winograd(numba_on, monkeypatch):
    monkeypatch.setattr(
        plan, "THRESHOLDS", dataclasses.replace(plan.THRESHOLDS, winograd_auto=True)
    )
    assert _path((32, 64, 32, 32), (64, 64, 3, 3)) is ConvPath.WINOGRAD
    assert _path((32, 64, 32, 32), (64, 64, 3, 3), algorithm="gemm") is ConvPath.CHUNKED
    assert _path((256, 6, 14, 14), (16, 6, 5, 5), padding=0) is not ConvPath.WINOGRAD  # LeNet
    assert _path((256, 1, 28, 28), (6, 1, 5, 5), padding=2) is not ConvPath.WINOGRAD
    assert _path((32, 3, 32, 32), (64, 3, 3, 3)) is not ConvPath.WINOGRAD  # 3 input channels
    assert _path((32, 64, 32, 32), (64, 64, 3, 3), stride=2) is not ConvPath.WINOGRAD


def test_auto_without_numba_keeps_the_gemm_path(monkeypatch):
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    assert _path((32, 64, 32, 32), (64, 64, 3, 3)) is ConvPath.CHUNKED


def test_the_entry_point_refuses_what_an_algorithm_cannot_run(numba_on):
    with pytest.raises(ValueError, match="algorithm='winograd' runs 2-D 3x3"):
        _path((2, 4, 8, 8), (4, 4, 5, 5), algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm='winograd'.*stride"):
        _path((2, 4, 8, 8), (4, 4, 3, 3), algorithm="winograd", stride=2)
    with pytest.raises(ValueError, match="algorithm='winograd'.*dilation"):
        _path((2, 4, 8, 8), (4, 4, 3, 3), algorithm="winograd", dilation=2)
    with pytest.raises(ValueError, match="algorithm='winograd'"):
        _path((2, 4, 8), (4, 4, 3), algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm='direct'.*groups 2"):
        _path((2, 4, 8, 8), (4, 2, 3, 3), groups=2, algorithm="direct")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        _path((2, 4, 8, 8), (4, 4, 3, 3), algorithm="fft")


def test_layer_gradcheck_with_winograd(engine):
    layer = Conv2D(4, 6, 3, padding=((1, 0), (2, 1)), groups=2, rng=0, dtype=np.float64,
                   algorithm="winograd")  # fmt: skip
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 7))
    check_layer_grads(layer, x)


@pytest.mark.parametrize("algorithm", ["auto", "gemm", "winograd", "direct"])
def test_layer_algorithm_config_round_trip(algorithm):
    layer = Conv2D(3, 4, 3, padding=1, rng=0, algorithm=algorithm)
    config = layer.get_config()
    assert ("algorithm" in config) == (algorithm != "auto")  # "auto" keeps old configs as they were
    rebuilt = Conv2D.from_config(json.loads(json.dumps(config)))
    assert rebuilt.algorithm == algorithm and rebuilt.get_config() == config
    assert layer_from_dict(json.loads(json.dumps(layer_to_dict(layer)))).algorithm == algorithm


def test_layer_algorithm_errors():
    with pytest.raises(ValueError, match=r"Conv2D\(in_channels=3\): algorithm must be one of"):
        Conv2D(3, 4, 3, algorithm="fft")
    with pytest.raises(ValueError, match=r"algorithm must be one of"):
        Conv2D(3, 4, 3, algorithm=None)
    with pytest.raises(ValueError, match=r"'winograd' runs 2-D 3x3.*kernel_size=\(5, 5\)"):
        Conv2D(3, 4, 5, algorithm="winograd")
    with pytest.raises(ValueError, match=r"algorithm='winograd'.*stride=\(2, 2\)"):
        Conv2D(3, 4, 3, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match=r"algorithm='winograd'.*dilation=\(2, 2\)"):
        Conv2D(3, 4, 3, dilation=2, algorithm="winograd")
    with pytest.raises(ValueError, match=r"Conv1D.*algorithm='winograd'"):
        Conv1D(3, 4, 3, algorithm="winograd")
    with pytest.raises(ValueError, match=r"algorithm='direct'.*groups=3"):
        Conv2D(3, 3, 3, groups=3, algorithm="direct")
    with pytest.raises(ValueError, match=r"algorithm='direct'.*stride=\(2, 2\)"):
        Conv2D(3, 3, 3, stride=2, algorithm="direct")
    with pytest.raises(TypeError):
        ConvTranspose2D(3, 4, 3, algorithm="winograd")  # transposed convolution: untouched


def test_layer_runs_the_path_it_names(numba_on):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for algorithm, path in [("winograd", ConvPath.WINOGRAD), ("direct", ConvPath.DIRECT),
                            ("gemm", ConvPath.GEMM)]:  # fmt: skip
        layer = Conv2D(3, 4, 3, padding=1, rng=0, algorithm=algorithm)
        _, cache = layer._forward(x)
        assert cache.path is path
    assert isinstance(layer, ConvND)
