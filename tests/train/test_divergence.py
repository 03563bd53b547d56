"""TrainingDiverged: where, when and in which layer of the tree training went non-finite."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet import io
from deltanet.layers import Dense, Layer, ReLU, Sequential
from deltanet.layers.containers import Residual
from deltanet.optim import SGD
from deltanet.train import ModelCheckpoint, TrainingDiverged, fit
from deltanet.train.divergence import first_bad_parameter
from tests.train.common import blobs, images, mlp, residual_net


def test_divergence_names_step_and_layer_and_keeps_last_checkpoint(tmp_path):
    x, y = blobs()  # 8 batches per epoch
    model = mlp()
    last = tmp_path / "last.safetensors"

    def schedule(it):
        return 0.05 if it < 10 else 1e30  # explodes in epoch 2, batch 3

    with pytest.raises(TrainingDiverged) as info:
        fit(model, "cross_entropy", SGD(model), (x, y), epochs=3, batch_size=16,
            schedule=schedule, callbacks=[ModelCheckpoint(tmp_path, save_best=False)],
            verbose=0)  # fmt: skip
    err = info.value
    msg = str(err)
    assert "epoch 2/3" in msg and "batch 4/8" in msg and "iteration 11" in msg, msg
    assert "First non-finite: output of layer 2 Dense(in_features=16)" in msg, msg
    assert (err.epoch, err.batch, err.step, err.layer) == (2, 4, 11, "2")
    meta = io.load_checkpoint(last).metadata
    assert meta["epoch"] == 1 and meta["step"] == 8
    ckpt = io.load_checkpoint(last)
    assert all(np.isfinite(v).all() for v in ckpt.model.state_dict().values())


def test_poisoned_weight_in_nested_sequential_is_found():
    x, y = blobs(32)
    model = Sequential(Dense(6, 8, rng=0), ReLU(), Sequential(Dense(8, 8, rng=1), ReLU()),
                       Dense(8, 4, rng=2))  # fmt: skip
    model.layers[2].layers[0].weight.data[0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"output of layer 2\.0 Dense\(in_features=8\)"):
        fit(model, "cross_entropy", SGD(model), (x, y), verbose=0)


class NanGradient(Layer):
    """Identity forward, NaN backward: only the gradient goes non-finite."""

    def _forward(self, x):
        return x, None

    def _backward(self, dy, cache, input_grad):
        return dy * np.nan


def test_non_finite_gradient_is_found_from_the_top():
    x, y = blobs(32)
    model = Sequential(Dense(6, 8, rng=0), NanGradient(), ReLU(), Dense(8, 4, rng=2))
    with pytest.raises(TrainingDiverged) as info:
        fit(model, "cross_entropy", SGD(model), (x, y), verbose=0)
    assert "a gradient is non-finite" in str(info.value)
    assert "gradient (input) of layer 1 NanGradient()" in str(info.value)
    assert info.value.layer == "1"


def test_optimizer_step_that_overflows_names_the_parameter():
    x, y = blobs(32)
    model = mlp()
    with pytest.raises(TrainingDiverged, match="optimizer step made weight non-finite"):
        fit(model, "cross_entropy", SGD(model, lr=3e38), (x * 1000, y), verbose=0)


def test_poisoned_weight_inside_a_custom_block_is_named_by_its_dotted_name():
    x, y = images(32)
    model = residual_net()
    model[1].block.conv.weight.data[0, 0, 1, 1] = np.nan
    with pytest.raises(TrainingDiverged) as info:
        fit(model, "cross_entropy", SGD(model), (x, y), verbose=0)
    assert "First non-finite: output of layer 1.block.conv Conv2D(in_channels=4)" in str(info.value)
    assert info.value.layer == "1.block.conv"
    assert first_bad_parameter(model)[0::2] == ("1.block.conv", "weight")


def test_non_finite_gradient_inside_a_residual_is_found_from_the_top():
    x, y = blobs(32)
    block = Sequential(Dense(8, 8, rng=1), NanGradient())
    model = Sequential(Dense(6, 8, rng=0), Residual(block), ReLU(), Dense(8, 4, rng=2))
    with pytest.raises(TrainingDiverged) as info:
        fit(model, "cross_entropy", SGD(model), (x, y), verbose=0)
    assert "gradient (input) of layer 1.block.1 NanGradient()" in str(info.value)
    assert all("forward" not in vars(layer) for layer in model.layers_tree())  # watches gone


def test_a_model_that_is_one_layer_is_named_model():
    x, y = blobs(16)
    model = Dense(6, 4, rng=0)
    model.weight.data[0, 0] = np.inf
    with pytest.raises(TrainingDiverged) as info:
        fit(model, "cross_entropy", SGD(model), (x, y), verbose=0)
    assert info.value.layer == "model" and "layer model Dense(in_features=6)" in str(info.value)
