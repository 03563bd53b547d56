"""The MPI helpers in one process: the timeout setting, shards, the model's fingerprint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deltanet import distributed as dist
from deltanet.layers import Dense, Layer
from tests.train.common import residual_net


def test_timeout_setting(monkeypatch):
    monkeypatch.setenv(dist.TIMEOUT_ENV, "2.5")
    assert dist.timeout() == 2.5
    monkeypatch.setenv(dist.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="DELTANET_MPI_TIMEOUT must be a positive number"):
        dist.timeout()


@pytest.mark.parametrize("n", [0, 1, 5, 24])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shards_cover_the_batch_once(n, size):
    rows = [list(range(n))[dist.shard(n, r, size)] for r in range(size)]
    assert sum(rows, []) == list(range(n))
    assert max(map(len, rows)) - min(map(len, rows)) <= 1


class Unregistered(Layer):
    """A layer of one's own that is not registered (it could not be saved)."""

    def __init__(self):
        super().__init__()
        self.inner = Dense(3, 2, rng=0)

    def _forward(self, x):
        return self.inner(x), None

    def _backward(self, dy, cache, input_grad):
        return self.inner.backward(dy, input_grad=input_grad)


def test_architecture_describes_the_tree_of_any_model():
    text = dist.architecture(residual_net())
    layers = json.loads(text)["layers"]
    assert [name for name, _, _ in layers][:5] == ["", "0", "1", "1.block", "1.block.conv"]
    assert layers[3][1:] == ["Block", {"channels": 4, "p": 0.3, "seed": 1}]
    other = residual_net()
    other[0].weight.data += 1
    assert text == dist.architecture(other)  # weights do not count
    assert text != dist.architecture(residual_net(classes=4))
    other = json.loads(dist.architecture(Unregistered()))
    assert [row[:2] for row in other["layers"]] == [["", "Unregistered"], ["inner", "Dense"]]
    assert other["state"] == [["inner.weight", [2, 3], "float32"], ["inner.bias", [2], "float32"]]


def test_one_process_collectives_are_the_identity():
    a = np.arange(4.0)
    assert dist.allreduce_sum(a) is a and list(a) == [0, 1, 2, 3]
    assert dist.broadcast_text("run") == "run"
    net = residual_net()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    dist.broadcast_parameters(net)
    dist.allreduce_gradients(net)
    dist.average_buffers(net)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
