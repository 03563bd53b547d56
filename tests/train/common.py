"""Data and models shared by the tests of the training loop."""

from __future__ import annotations

import numpy as np

from deltanet.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, Layer, ReLU, Sequential
from deltanet.layers.containers import Residual
from deltanet.layers.registry import register_layer

VAL_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


def blobs(n=120, seed=0, features=6, classes=4, dtype=np.float32):
    """Four separable clusters in ``features`` dims."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = np.random.default_rng(99).standard_normal((classes, features)) * 3
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(dtype), y.astype(np.int64)


def images(n=48, seed=0, classes=3):
    """``(n, 1, 6, 6)`` float32 images whose mean brightness tells the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, 1, 6, 6)) + y[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


def mlp(seed=0, dropout=0.0, features=6, classes=4):
    layers = [Dense(features, 16, rng=seed), ReLU()]
    if dropout:
        layers.append(Dropout(dropout, rng=seed + 1))
    return Sequential(*layers, Dense(16, classes, rng=seed + 2))


@register_layer(name="TrainTestBlock")
class Block(Layer):
    """A layer of one's own holding others in attributes: conv, batch norm, ReLU, dropout."""

    def __init__(self, channels: int, p: float = 0.3, seed: int = 0) -> None:
        super().__init__()
        self.channels, self.p, self.seed = channels, p, seed
        self.conv = Conv2D(channels, channels, 3, padding=1, rng=seed)
        self.bn = BatchNorm2D(channels)
        self.relu = ReLU()
        self.drop = Dropout(p, rng=seed + 1)

    def _forward(self, x):
        return self.drop(self.relu(self.bn(self.conv(x)))), None

    def _backward(self, dy, cache, input_grad):
        dy = self.bn.backward(self.relu.backward(self.drop.backward(dy)))
        return self.conv.backward(dy, input_grad=input_grad)

    def get_config(self):
        return {"channels": self.channels, "p": self.p, "seed": self.seed}


def residual_net(seed=0, p=0.3, classes=3):
    """Conv2D, then a Residual around a ``Block`` (named ``1.block``), then a classifier."""
    return Sequential(
        Conv2D(1, 4, 3, padding=1, rng=seed),
        Residual(Block(4, p=p, seed=seed + 1)),
        Flatten(),
        Dense(4 * 6 * 6, classes, rng=seed + 3),
    )


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def assert_same_weights(a, b):
    for wa, wb in zip(weights(a), weights(b), strict=True):
        np.testing.assert_array_equal(wa, wb)
