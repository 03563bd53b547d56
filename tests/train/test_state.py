"""The training state's checkpoint metadata: layer Generators anywhere in the tree, resume."""

from __future__ import annotations

import numpy as np

from deltanet import io
from deltanet.layers import Dropout, Sequential
from deltanet.optim import Adam
from deltanet.train import ModelCheckpoint, fit
from deltanet.train.state import layer_generators
from tests.train.common import assert_same_weights, images, mlp, residual_net


def test_generator_keys_are_dotted_layer_names():
    assert [k for k, _ in layer_generators(mlp(dropout=0.3))] == ["2:rng"]  # as before
    nested = Sequential(Dropout(0.1, rng=0), Sequential(Dropout(0.2, rng=1)))
    assert [k for k, _ in layer_generators(nested)] == ["0:rng", "1.0:rng"]
    assert [k for k, _ in layer_generators(Dropout(0.5, rng=0))] == [":rng"]
    model = residual_net()
    keys = dict(layer_generators(model))
    assert list(keys) == ["1.block.drop:rng"]
    assert keys["1.block.drop:rng"] is model[1].block.drop.rng


def _train(model, directory, epochs, resume_from=None):
    x, y = images(40)
    fit(model, "cross_entropy", Adam(model, lr=0.01), (x, y), epochs=epochs, batch_size=16,
        callbacks=[ModelCheckpoint(directory, monitor="loss")], seed=3, verbose=0,
        resume_from=resume_from)  # fmt: skip
    return model


def test_resume_continues_the_dropout_masks_inside_a_custom_block(tmp_path):
    full = _train(residual_net(), tmp_path / "a", 4)
    _train(residual_net(), tmp_path / "b", 2)
    last = tmp_path / "b" / "last.safetensors"
    meta = io.load_checkpoint(last).metadata
    assert list(meta["layer_rng_states"]) == ["1.block.drop:rng"]
    # a fresh process: other initial weights and another dropout seed, all replaced on resume
    resumed = _train(residual_net(seed=7), tmp_path / "b", 4, resume_from=last)
    assert_same_weights(full, resumed)
    np.testing.assert_array_equal(
        full[1].block.bn.running_var, resumed[1].block.bn.running_var
    )  # batch norm inside the block: its statistics were checkpointed too
