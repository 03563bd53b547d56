"""BatchNorm1D/2D/3D layers: PyTorch parity over several steps, modes, buffers, errors, config."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.layers.norm import BatchNorm1D, BatchNorm2D, BatchNorm3D, BatchNormND
from tests.utils import check_layer_grads, torch_or_skip

CASES = [  # (our class, torch class name, input shape)
    (BatchNorm1D, "BatchNorm1d", (6, 3)),
    (BatchNorm1D, "BatchNorm1d", (3, 2, 5)),
    (BatchNorm2D, "BatchNorm2d", (2, 3, 4, 3)),
    (BatchNorm3D, "BatchNorm3d", (2, 2, 3, 2, 3)),
]


def _pair(cls, torch_name, c, dtype, **kwargs):
    """Our layer and PyTorch's, with the same random affine parameters."""
    torch = torch_or_skip()
    ours = cls(c, dtype=dtype, **kwargs)
    theirs = getattr(torch.nn, torch_name)(c, dtype=getattr(torch, np.dtype(dtype).name), **kwargs)
    if ours.affine:
        rng = np.random.default_rng(0)
        ours.weight.data[...] = rng.uniform(0.5, 1.5, c)
        ours.bias.data[...] = rng.standard_normal(c)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(ours.weight.data))
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    return ours, theirs


def _step(torch, ours, theirs, x, dy, tol):
    """One forward/backward in both; compare y, dx, dweight, dbias."""
    ours.zero_grad()
    theirs.zero_grad()
    y = ours(x)
    dx = ours.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    pairs = [(y, yt), (dx, xt.grad)]
    if ours.affine:
        pairs += [(ours.weight.grad, theirs.weight.grad), (ours.bias.grad, theirs.bias.grad)]
    for a, b in pairs:
        assert a.dtype == x.dtype
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"momentum": None}, {"affine": False, "momentum": 0.3}, {"track_running_stats": False}],
)
@pytest.mark.parametrize("cls, torch_name, shape", CASES)
def test_matches_torch_over_training_steps_and_eval(cls, torch_name, shape, kwargs, dtype, tol):
    torch = torch_or_skip()
    ours, theirs = _pair(cls, torch_name, shape[1], dtype, **kwargs)
    rng = np.random.default_rng(1)
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        _step(torch, ours, theirs, x, dy, tol)
        if ours.track_running_stats:
            np.testing.assert_allclose(ours.running_mean, theirs.running_mean, rtol=tol, atol=tol)
            np.testing.assert_allclose(ours.running_var, theirs.running_var, rtol=tol, atol=tol)
            assert ours.num_batches_tracked == int(theirs.num_batches_tracked) == step + 1
            assert ours.running_mean.dtype == ours.running_var.dtype == dtype
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    _step(torch, ours, theirs, x, rng.standard_normal(shape).astype(dtype), tol)
    if ours.track_running_stats:  # eval mode leaves the running statistics alone
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean, rtol=tol, atol=tol)
        assert ours.num_batches_tracked == 3


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cls, shape", [(c[0], c[2]) for c in CASES])
def test_gradients_central_differences(cls, shape, training):
    layer = cls(shape[1], dtype=np.float64, track_running_stats=not training)
    rng = np.random.default_rng(2)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, shape[1])
    layer.bias.data[...] = rng.standard_normal(shape[1])
    layer.train(training)
    x = rng.standard_normal(shape)
    check_layer_grads(layer, x, rtol=1e-5, atol=1e-7)  # δx, then weight and bias


def test_backward_adds_into_grads():
    layer = BatchNorm2D(2, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((2, 2, 3, 3))
    layer(x)
    layer.backward(np.ones_like(x) + x)
    once = layer.weight.grad.copy()
    layer.backward(np.ones_like(x) + x)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)


def test_float32_stays_float32_and_float64_input_follows_input():
    layer = BatchNorm2D(3)
    x = np.random.default_rng(4).standard_normal((2, 3, 2, 2)).astype(np.float32)
    y = layer(x)
    assert y.dtype == layer.backward(y).dtype == layer.weight.grad.dtype == np.float32
    assert layer.running_var.dtype == np.float32
    y64 = layer(x.astype(np.float64))  # a float64 input: float64 out, float32 buffers kept
    assert y64.dtype == np.float64 and layer.running_mean.dtype == np.float32


def test_parameters_and_buffers():
    layer = BatchNorm1D(4)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(layer.weight.data, 1)
    np.testing.assert_array_equal(layer.bias.data, 0)
    assert set(layer.buffers()) == {"running_mean", "running_var", "num_batches_tracked"}
    layer(np.random.default_rng(5).standard_normal((8, 4)).astype(np.float32))
    other = BatchNorm1D(4)
    other.load_buffers({k: v.copy() for k, v in layer.buffers().items()})
    for k, v in layer.buffers().items():
        np.testing.assert_array_equal(other.buffers()[k], v)
    assert other.num_batches_tracked == 1
    with pytest.raises(ValueError, match=r"BatchNorm1D\(num_features=4\): running_mean must"):
        other.load_buffers({**layer.buffers(), "running_mean": np.zeros(3)})
    with pytest.raises(ValueError, match="expected buffers"):
        other.load_buffers({})
    bare = BatchNorm1D(4, affine=False, track_running_stats=False)
    assert bare.parameters() == [] and bare.buffers() == {} and bare.running_mean is None


def test_eval_without_running_stats_uses_batch_stats():
    layer = BatchNorm1D(2, track_running_stats=False, dtype=np.float64).eval()
    x = np.random.default_rng(6).standard_normal((5, 2)) * 3 + 2
    y = layer(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)


@pytest.mark.parametrize(
    "layer, x, match",
    [
        (
            BatchNorm1D(3),
            np.zeros((2, 3, 4, 4)),
            r"BatchNorm1D\(num_features=3\): expected input "
            r"of shape \(N, 3\) or \(N, 3, L\)\. Received: \(2, 3, 4, 4\)",
        ),
        (BatchNorm2D(3), np.zeros((2, 4, 5, 5)), r"\(N, 3, H, W\)\. Received: \(2, 4, 5, 5\)"),
        (BatchNorm3D(2), np.zeros((2, 2, 5, 5)), r"\(N, 2, D, H, W\)\. Received: \(2, 2, 5, 5\)"),
        (BatchNormND(2), np.zeros((2,)), r"BatchNormND\(num_features=2\): .*\(N, 2, \*spatial\)"),
        (
            BatchNorm1D(3),
            np.zeros((1, 3)),
            r"BatchNorm1D\(num_features=3\): expected more than "
            r"1 value per channel when training.*\(1, 3\)",
        ),
        (BatchNorm2D(3), np.zeros((1, 3, 1, 1)), "more than 1 value per channel"),
    ],
)
def test_bad_input_shapes(layer, x, match):
    with pytest.raises(ValueError, match=match):
        layer(x.astype(np.float32))


def test_batch_of_one_is_fine_in_eval_and_with_spatial_axes():
    assert BatchNorm1D(3).eval()(np.ones((1, 3), np.float32)).shape == (1, 3)
    assert BatchNorm2D(3)(np.random.default_rng(7).random((1, 3, 2, 2))).shape == (1, 3, 2, 2)
    assert BatchNorm1D(3, track_running_stats=False).output_shape((1, 3)) == (1, 3)


def test_integer_input_and_backward_before_forward():
    layer = BatchNorm2D(3)
    with pytest.raises(TypeError, match=r"BatchNorm2D\(num_features=3\): .*Received dtype: int"):
        layer(np.zeros((2, 3, 2, 2), np.int64))
    with pytest.raises(ValueError, match=r"BatchNorm2D\(num_features=3\): backward\(\) called"):
        layer.backward(np.zeros((2, 3, 2, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_features": 0}, ValueError, "num_features must be positive. Received: 0"),
        ({"num_features": 2.0}, TypeError, "num_features must be an int. Received: 2.0"),
        ({"num_features": 2, "eps": 0.0}, ValueError, "eps must be a positive float"),
        ({"num_features": 2, "momentum": 1.5}, ValueError, "momentum must be .* Received: 1.5"),
        ({"num_features": 2, "affine": 1}, TypeError, "affine must be a bool"),
        ({"num_features": 2, "track_running_stats": None}, TypeError, "track_running_stats"),
        ({"num_features": 2, "dtype": np.int32}, TypeError, "dtype must be a float type"),
        ({"num_features": 2, "dtype": "nonsense"}, TypeError, "dtype must be a float type"),
    ],
)
def test_bad_constructor_args(kwargs, error, match):
    with pytest.raises(error, match=r"BatchNorm3D: " + match):
        BatchNorm3D(**kwargs)


@pytest.mark.parametrize("cls", [BatchNorm1D, BatchNorm2D, BatchNorm3D])
def test_config_round_trip(cls):
    import json

    layer = cls(5, eps=1e-3, momentum=None, affine=False, track_running_stats=True, dtype="float64")
    config = json.loads(json.dumps(layer.get_config()))
    assert list(config)[0] == "num_features" and config["dtype"] == "float64"
    rebuilt = cls.from_config(config)
    assert rebuilt.get_config() == layer.get_config()
    assert rebuilt.running_mean.dtype == np.float64 and rebuilt.weight is None
    assert layer.label() == f"{cls.__name__}(num_features=5)"
