"""A zoo of named models, each a ``Sequential`` built from a seed with PyTorch's default init.

``build_model("digits_cnn", seed=0)`` returns a fresh model; the same name and seed give the same
weights. Every builder takes the per-example ``input_shape`` (channels first, no batch axis) and
``num_classes``, validates them, and sizes its dense layers from the input shape.

| name            | input           | architecture                                               |
|-----------------|-----------------|------------------------------------------------------------|
| digits_cnn      | (1, 8, 8)       | conv3x3 32, ReLU, conv3x3 64, ReLU, maxpool 2, dense 128-10|
| lenet5          | (1, 28, 28)     | conv5x5 6 pad 2, ReLU, pool, conv5x5 16, ReLU, pool,       |
|                 |                 | dense 120-84-10                                            |
| mlp             | (400,)          | dense 400-25-10 with sigmoid (the classic digit network)   |
| cnn1d           | (1, 40)         | conv1d 5 32, ReLU, pool, conv1d 5 64, ReLU, pool,          |
|                 |                 | dense 128-10                                               |
| cnn3d           | (1, 16, 16, 16) | conv3d 3 8, ReLU, pool, conv3d 3 16, ReLU, pool, dense     |
|                 |                 | 64-10                                                      |
| binary_lenet    | (1, 8, 8)       | conv3x3 64 BN, 1-bit conv 64 BN pool, 1-bit conv 128 BN    |
|                 |                 | pool, 1-bit dense 256 BN, dense 10 (first and last float)  |
| resnet1d        | (1, 40)         | conv5 32 BN ReLU, basic blocks 2x32, 2x64 /2, 2x128 /2,    |
|                 |                 | global avg pool, dense 10 (projection shortcuts; 0.24 M)   |
| resnet20        | (3, 32, 32)     | He et al.'s CIFAR ResNet-20: conv3x3 16 BN ReLU, basic     |
|                 |                 | blocks 3x16, 3x32 /2, 3x64 /2, global avg pool, dense 10   |
|                 |                 | (0.27 M). The variant for 1x28x28: the same net, built     |
|                 |                 | with input_shape=(1, 28, 28) (any C; H, W >= 8)            |
| bireal_resnet1d | (1, 40)         | resnet1d's layout in Bi-Real blocks, BN(1-bit conv3(sign   |
|                 |                 | x)) + x around every conv; float stem, shortcuts, dense    |
| bireal_resnet20 | (3, 32, 32)     | resnet20's layout in Bi-Real blocks (18 1-bit convs); the  |
|                 |                 | 1x28x28 variant: input_shape=(1, 28, 28)                   |

A basic block is ``ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))`` (``deltanet.zoo.resnet``);
a Bi-Real block ``BN(1-bit conv(ApproxSign(x))) + shortcut(x)`` (``deltanet.zoo.bireal``). The
residual nets take ``channels=`` (one width per stage) and ``blocks=`` (per stage), and
``dtype=`` (float64 for gradient checks).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deltanet.layers import Sequential
from deltanet.zoo.bireal import bireal_resnet1d, bireal_resnet20
from deltanet.zoo.classic import (
    ACTIVATIONS,
    binary_lenet,
    cnn1d,
    cnn3d,
    digits_cnn,
    lenet5,
    mlp,
)
from deltanet.zoo.common import MAX_DENSE_WEIGHTS, MAX_INPUT_SIZE
from deltanet.zoo.resnet import resnet1d, resnet20

__all__ = [
    "MODELS", "MAX_INPUT_SIZE", "MAX_DENSE_WEIGHTS", "ACTIVATIONS",
    "build_model", "default_input_shape",
    "digits_cnn", "lenet5", "mlp", "cnn1d", "cnn3d", "binary_lenet",
    "resnet1d", "resnet20", "bireal_resnet1d", "bireal_resnet20",
]  # fmt: skip


_BUILDERS: dict[str, Callable[..., Sequential]] = {
    "digits_cnn": digits_cnn,
    "lenet5": lenet5,
    "mlp": mlp,
    "cnn1d": cnn1d,
    "cnn3d": cnn3d,
    "binary_lenet": binary_lenet,
    "resnet1d": resnet1d,
    "resnet20": resnet20,
    "bireal_resnet1d": bireal_resnet1d,
    "bireal_resnet20": bireal_resnet20,
}
MODELS = tuple(_BUILDERS)


def default_input_shape(name: str) -> tuple[int, ...]:
    """The per-example input shape a model is designed for, e.g. (1, 8, 8) for digits_cnn.

    Raises ValueError for an unknown ``name``, listing the models.
    """
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

    Raises ValueError for an unknown ``name`` (listing the models), an ``input_shape`` the model
    cannot take, or options the builder does not have; TypeError for a ``num_classes`` that is not
    an int.
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
