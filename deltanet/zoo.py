"""A zoo of named models, each a ``Sequential`` built from a seed with PyTorch's default init.

``build_model("digits_cnn", seed=0)`` returns a fresh model; the same name and seed give the same
weights. Every builder takes the per-example ``input_shape`` (channels first, no batch axis) and
``num_classes``, validates them, and sizes its dense layers from the input shape.

| name         | input            | architecture                                                  |
|--------------|------------------|---------------------------------------------------------------|
| digits_cnn   | (1, 8, 8)        | conv3x3 32, ReLU, conv3x3 64, ReLU, maxpool 2, dense 128, 10  |
| lenet5       | (1, 28, 28)      | conv5x5 6 pad 2, ReLU, pool, conv5x5 16, ReLU, pool, 120-84-10|
| mlp          | (400,)           | dense 400-25-10 with sigmoid (the classic digit network)      |
| cnn1d        | (1, 40)          | conv1d 5 32, ReLU, pool, conv1d 5 64, ReLU, pool, dense 128-10|
| cnn3d        | (1, 16, 16, 16)  | conv3d 3 8, ReLU, pool, conv3d 3 16, ReLU, pool, dense 64-10  |
| binary_lenet | (1, 8, 8)        | conv3x3 64 BN, 1-bit conv 64 BN pool, 1-bit conv 128 BN pool, |
|              |                  | 1-bit dense 256 BN, dense 10 (first and last full precision)  |
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deltanet.binary.layers import QConv2D, QDense
from deltanet.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv1D,
    Conv2D,
    Conv3D,
    Dense,
    Dropout,
    Flatten,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
# Bounds that keep a typo from allocating gigabytes (--input-shape 100000000 once took 24 GB):
# the values of one example (1x1024x1024, 3x512x512, 100^3), and the weights of one dense
# layer (256 MiB of float32; 1 GiB when training with Adam).
MAX_INPUT_SIZE = 2**20
MAX_DENSE_WEIGHTS = 2**26


def _check_dense(name: str, input_shape: tuple[int, ...], *sizes: tuple[int, int]) -> None:
    """Refuse, before any is built, a dense layer ``(n_in, n_out)`` past ``MAX_DENSE_WEIGHTS``."""
    for n_in, n_out in sizes:
        if n_in * n_out > MAX_DENSE_WEIGHTS:
            raise ValueError(
                f"{name}: input shape {input_shape} would need a dense layer of {n_in:,} x "
                f"{n_out:,} = {n_in * n_out:,} weights, more than the zoo builds "
                f"({MAX_DENSE_WEIGHTS:,}). The input shape is one example's, without the batch "
                "axis; give a smaller one."
            )


def _spatial(name: str, input_shape: tuple[int, ...], ndim: int, minimum: int) -> tuple[int, ...]:
    """Check a channels-first ``(C, *spatial)`` shape of ``ndim`` spatial axes, each >= minimum."""
    if len(input_shape) != 1 + ndim or min(input_shape) < 1:
        axes = ", ".join(("C", *{1: "L", 2: "HW", 3: "DHW"}[ndim]))
        raise ValueError(
            f"{name}: expected an input shape ({axes}) per example. Received: {input_shape}."
        )
    if min(input_shape[1:]) < minimum:
        raise ValueError(
            f"{name}: every spatial size must be at least {minimum}. Received: {input_shape}."
        )
    return input_shape[1:]


def digits_cnn(
    input_shape=(1, 8, 8), num_classes=10, *, channels=(32, 64), hidden=128, dropout=0.0, rng=None
) -> Sequential:
    """Small CNN for the 8x8 digits: two 3x3 'same' convs, one 2x2 max-pool, two dense layers.

    (N, C, H, W) -> conv3x3(C->32) ReLU -> conv3x3(32->64) ReLU -> maxpool 2 -> flatten
    (N, 64*H/2*W/2) -> dense 128 ReLU [-> dropout] -> dense num_classes (logits).
    """
    h, w = _spatial("digits_cnn", input_shape, 2, 2)
    c1, c2 = channels
    _check_dense(
        "digits_cnn", input_shape, (c2 * (h // 2) * (w // 2), hidden), (hidden, num_classes)
    )
    layers = [
        Conv2D(input_shape[0], c1, 3, padding=1, rng=rng),
        ReLU(),
        Conv2D(c1, c2, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(c2 * (h // 2) * (w // 2), hidden, rng=rng),
        ReLU(),
    ]
    if dropout:
        layers.append(Dropout(dropout, rng=rng))
    return Sequential(*layers, Dense(hidden, num_classes, rng=rng))


def lenet5(input_shape=(1, 28, 28), num_classes=10, *, rng=None) -> Sequential:
    """LeNet-5 with ReLU and max-pooling (61,706 parameters for 28x28 inputs and 10 classes).

    (N, C, 28, 28) -> conv5x5(C->6, pad 2) ReLU -> maxpool 2 (6, 14, 14) -> conv5x5(6->16) ReLU
    -> maxpool 2 (16, 5, 5) -> flatten 400 -> dense 120 ReLU -> dense 84 ReLU -> dense classes.
    """
    h, w = _spatial("lenet5", input_shape, 2, 12)
    flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
    _check_dense("lenet5", input_shape, (flat, 120), (84, num_classes))
    return Sequential(
        Conv2D(input_shape[0], 6, 5, padding=2, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Conv2D(6, 16, 5, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(flat, 120, rng=rng),
        ReLU(),
        Dense(120, 84, rng=rng),
        ReLU(),
        Dense(84, num_classes, rng=rng),
    )


def mlp(
    input_shape=(400,), num_classes=10, *, hidden=(25,), activation="sigmoid", rng=None
) -> Sequential:
    """Fully connected network: flatten -> [dense -> activation] per hidden size -> dense.

    (N, *input_shape) -> (N, prod(input_shape)) -> hidden layers -> (N, num_classes); the default
    is the classic 400-25-10 sigmoid network of the handwritten-digit exercise.
    """
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"mlp: expected a non-empty input shape. Received: {input_shape}.")
    if isinstance(hidden, int):
        hidden = (hidden,)
    if not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(f"mlp: hidden must be positive ints. Received: {hidden!r}.")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"mlp: unknown activation {activation!r}. Valid: {', '.join(ACTIVATIONS)}."
        )
    layers: list = [Flatten()]
    sizes = [math.prod(input_shape), *hidden]
    _check_dense("mlp", input_shape, *zip(sizes, [*sizes[1:], num_classes]))
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(n_in, n_out, rng=rng), ACTIVATIONS[activation]()]
    return Sequential(*layers, Dense(sizes[-1], num_classes, rng=rng))


def cnn1d(input_shape=(1, 40), num_classes=10, *, channels=(32, 64), hidden=128, rng=None):
    """1D CNN for MNIST-1D sequences: two 'same' convs of width 5, each followed by max-pool 2.

    (N, C, L) -> conv5(C->32) ReLU pool -> conv5(32->64) ReLU pool -> flatten (N, 64*(L//4))
    -> dense 128 ReLU -> dense num_classes.
    """
    (length,) = _spatial("cnn1d", input_shape, 1, 4)
    c1, c2 = channels
    _check_dense("cnn1d", input_shape, (c2 * (length // 2 // 2), hidden), (hidden, num_classes))
    return Sequential(
        Conv1D(input_shape[0], c1, 5, padding=2, rng=rng),
        ReLU(),
        MaxPool1D(2),
        Conv1D(c1, c2, 5, padding=2, rng=rng),
        ReLU(),
        MaxPool1D(2),
        Flatten(),
        Dense(c2 * (length // 2 // 2), hidden, rng=rng),
        ReLU(),
        Dense(hidden, num_classes, rng=rng),
    )


def cnn3d(input_shape=(1, 16, 16, 16), num_classes=10, *, channels=(8, 16), hidden=64, rng=None):
    """3D CNN for voxel volumes: two 3x3x3 'same' convs, each followed by a 2x2x2 max-pool.

    (N, C, D, H, W) -> conv3(C->8) ReLU pool -> conv3(8->16) ReLU pool -> flatten
    (N, 16*D/4*H/4*W/4) -> dense 64 ReLU -> dense num_classes.
    """
    spatial = _spatial("cnn3d", input_shape, 3, 4)
    c1, c2 = channels
    flat = c2 * math.prod(s // 2 // 2 for s in spatial)
    _check_dense("cnn3d", input_shape, (flat, hidden), (hidden, num_classes))
    return Sequential(
        Conv3D(input_shape[0], c1, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool3D(2),
        Conv3D(c1, c2, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool3D(2),
        Flatten(),
        Dense(flat, hidden, rng=rng),
        ReLU(),
        Dense(hidden, num_classes, rng=rng),
    )


def binary_lenet(
    input_shape=(1, 8, 8), num_classes=10, *, channels=(64, 64, 128), hidden=256, rng=None
) -> Sequential:
    """A binary LeNet in the BMXNet manner: first and last layers full precision, the rest 1-bit.

    (N, C, H, W) -> conv3x3(C->64) BN -> 1-bit conv3x3(64->64) BN maxpool 2 -> 1-bit
    conv3x3(64->128) BN maxpool 2 -> flatten -> 1-bit dense 256 BN -> dense num_classes.
    Each 1-bit layer binarizes its own input (sign, STE) and its weights; the batch norm after
    it sets the scale and the threshold of the signs that the next layer takes, and ``pack``
    folds it into the packed layer. Channel counts that are multiples of 64 fill whole words.
    """
    h, w = _spatial("binary_lenet", input_shape, 2, 4)
    c1, c2, c3 = channels
    flat = c3 * (h // 2 // 2) * (w // 2 // 2)
    _check_dense("binary_lenet", input_shape, (flat, hidden), (hidden, num_classes))
    return Sequential(
        Conv2D(input_shape[0], c1, 3, padding=1, rng=rng),
        BatchNorm2D(c1),
        QConv2D(c1, c2, 3, padding=1, bias=False, rng=rng),
        BatchNorm2D(c2),
        MaxPool2D(2),
        QConv2D(c2, c3, 3, padding=1, bias=False, rng=rng),
        BatchNorm2D(c3),
        MaxPool2D(2),
        Flatten(),
        QDense(flat, hidden, bias=False, rng=rng),
        BatchNorm1D(hidden),
        Dense(hidden, num_classes, rng=rng),
    )


_BUILDERS: dict[str, Callable[..., Sequential]] = {
    "digits_cnn": digits_cnn,
    "lenet5": lenet5,
    "mlp": mlp,
    "cnn1d": cnn1d,
    "cnn3d": cnn3d,
    "binary_lenet": binary_lenet,
}
MODELS = tuple(_BUILDERS)


def default_input_shape(name: str) -> tuple[int, ...]:
    """The per-example input shape a model is designed for, e.g. (1, 8, 8) for digits_cnn."""
    builder = _builder(name)
    return tuple(inspect.signature(builder).parameters["input_shape"].default)


def _builder(name: str) -> Callable[..., Sequential]:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}. Valid models: {', '.join(MODELS)}.")
    return _BUILDERS[name]


def _check_shape(name: str, input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    ok = isinstance(input_shape, Sequence) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in input_shape
    )
    if not ok:
        raise TypeError(
            f"{name}: input_shape must be a tuple of ints (no batch axis). Received: "
            f"{input_shape!r}."
        )
    shape = tuple(int(s) for s in input_shape)
    if math.prod(shape) > MAX_INPUT_SIZE:
        raise ValueError(
            f"{name}: input_shape {shape} holds {math.prod(shape):,} values per example, more "
            f"than the zoo builds models for ({MAX_INPUT_SIZE:,}, e.g. 1x1024x1024). It is one "
            "example's shape, without the batch axis."
        )
    return shape


def build_model(
    name: str,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int = 10,
    seed: int = 0,
    **kwargs: Any,
) -> Sequential:
    """Build the zoo model ``name`` for per-example ``input_shape`` (default: the model's own).

    The layers draw their initial weights (and dropout masks) from one Generator seeded with
    ``seed``, in layer order. ``kwargs`` go to the builder (e.g. ``hidden=(25,)`` for mlp).
    """
    builder = _builder(name)
    shape = default_input_shape(name) if input_shape is None else _check_shape(name, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"{name}: num_classes must be an int. Received: {num_classes!r}.")
    if num_classes < 1:
        raise ValueError(f"{name}: num_classes must be at least 1. Received: {num_classes}.")
    options = [p for p in inspect.signature(builder).parameters if p not in ("input_shape", "rng")]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        valid = ", ".join(o for o in options if o != "num_classes")
        raise ValueError(f"{name}: unknown options {unknown}. Valid options: {valid}.")
    rng = np.random.default_rng(seed)
    return builder(shape, int(num_classes), rng=rng, **kwargs)
