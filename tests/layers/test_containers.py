"""Sequential: order of forward and backward, parameters, modes, config, summary."""

import numpy as np
import pytest

import deltanet as dn
from deltanet.gradcheck import gradcheck
from deltanet.layers.activations import ReLU, Tanh
from deltanet.layers.containers import Sequential
from deltanet.layers.dense import Dense
from deltanet.layers.dropout import Dropout
from deltanet.layers.registry import layer_from_dict, layer_to_dict


def small_model(dtype=np.float32):
    inner = Sequential(Dense(6, 5, rng=1, dtype=dtype), Tanh())
    return Sequential(
        Dense(4, 6, rng=0, dtype=dtype), ReLU(), inner, Dense(5, 3, rng=2, dtype=dtype)
    )


def test_backward_chains_deltas_and_matches_numerical():
    report = gradcheck(small_model(np.float64), np.random.default_rng(0).standard_normal((3, 4)))
    assert report.ok, str(report)
    assert len(report.rows) == 1 + 6 + 1  # input, 6 parameters, all parameters


def test_named_parameters_are_dotted_like_pytorch():
    names = [n for n, _ in small_model().named_parameters()]
    assert names == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "3.weight", "3.bias"]
    assert small_model().num_parameters() == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3


def test_zero_grad_and_accumulation():
    model = small_model()
    x = np.ones((2, 4), dtype=np.float32)
    dy = np.ones((2, 3), dtype=np.float32)
    model(x)
    model.backward(dy)
    once = model[0].weight.grad.copy()
    model.backward(dy)
    np.testing.assert_allclose(model[0].weight.grad, 2 * once, rtol=1e-6)
    model.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


def test_train_eval_propagates_to_nested_layers():
    model = Sequential(Dense(3, 3), Sequential(Dropout(0.5)))
    model.eval()
    assert not model[1][0].training
    model.train()
    assert model[1][0].training


def test_config_round_trip_rebuilds_the_architecture():
    model = small_model()
    again = layer_from_dict(layer_to_dict(model))
    assert repr(again) == repr(model)
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]


def test_config_rejects_unknown_layer_types():
    with pytest.raises(ValueError, match="unknown layer type 'Evil'.*Known types"):
        layer_from_dict({"class": "Evil", "config": {}})
    with pytest.raises(ValueError, match="Dense: invalid config"):
        layer_from_dict({"class": "Dense", "config": {"nope": 1}})


def test_summary_lists_shapes_and_totals():
    text = small_model().summary((2, 4), print_fn=None)
    assert "(2, 6)" in text and "(2, 3)" in text
    assert f"Total params: {small_model().num_parameters():,}" in text


def test_bad_items_and_indexing():
    with pytest.raises(TypeError, match="Sequential: every item must be a deltanet Layer"):
        Sequential(Dense(2, 2), "relu")
    model = small_model()
    assert isinstance(model[1:], Sequential) and len(model[1:]) == 3
    assert "Sequential(" in repr(model)


def test_state_dict_round_trip_includes_batch_norm_buffers():
    from deltanet.layers.norm import BatchNorm1D

    model = Sequential(Dense(4, 3, rng=0), BatchNorm1D(3), Sequential(Dense(3, 2, rng=1)))
    model(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    state = model.state_dict()
    assert list(state) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "2.0.weight", "2.0.bias",
        "1.running_mean", "1.running_var", "1.num_batches_tracked",
    ]  # fmt: skip
    fresh = Sequential(Dense(4, 3, rng=5), BatchNorm1D(3), Sequential(Dense(3, 2, rng=6)))
    fresh.load_state_dict({k: v.copy() for k, v in state.items()})
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    assert fresh[1].num_batches_tracked == 1


def test_load_state_dict_rejects_wrong_names_and_shapes():
    model = small_model()
    state = model.state_dict()
    with pytest.raises(ValueError, match="Missing: \\['3.bias'\\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "3.bias"})
    bad = dict(state, **{"3.bias": np.zeros(7, dtype=np.float32)})
    with pytest.raises(ValueError, match="3.bias must have shape \\(3,\\)"):
        model.load_state_dict(bad)


def test_summary_depth_lists_the_layers_inside_residual_blocks():
    block = dn.Sequential(dn.Conv2D(2, 4, 3, padding=1, stride=2), dn.ReLU())
    shortcut = dn.Conv2D(2, 4, 1, stride=2)
    model = dn.Sequential(dn.Residual(block, shortcut), dn.Flatten())
    flat = model.summary((1, 2, 6, 6), print_fn=None)
    assert "0.block.0" not in flat
    nested = model.summary((1, 2, 6, 6), print_fn=None, depth=2)
    lines = nested.splitlines()
    row = next(line for line in lines if "0.block.0: Conv2D" in line)
    assert row.startswith("  ") and "(1, 4, 3, 3)" in row and "76" in row  # 2*4*9 + 4
    assert any("0.block.1: ReLU" in line for line in lines)
    assert any("0.shortcut: Conv2D" in line and "(1, 4, 3, 3)" in line for line in lines)
    assert lines[-1].endswith("Output shape: (1, 36)")
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        model.summary((1, 2, 6, 6), print_fn=None, depth=0)
