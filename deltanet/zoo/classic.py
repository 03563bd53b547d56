"""The classic models of the zoo: digits_cnn, lenet5, mlp, cnn1d, cnn3d and binary_lenet.

Each builder takes the per-example ``input_shape`` (channels first, no batch axis),
``num_classes`` and ``rng``, validates the shape and sizes its dense layers from it.
"""

from __future__ import annotations

import math

from deltanet.binary.layers import QConv2D, QDense
from deltanet.init import RngLike
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
from deltanet.zoo.common import check_dense, spatial_sizes

Shape = tuple[int, ...]  # one example's, channels first
ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def digits_cnn(
    input_shape: Shape = (1, 8, 8),
    num_classes: int = 10,
    *,
    channels: tuple[int, int] = (32, 64),
    hidden: int = 128,
    dropout: float = 0.0,
    rng: RngLike = None,
) -> Sequential:
    """Small CNN for the 8x8 digits: two 3x3 'same' convs, one 2x2 max-pool, two dense layers.

    (N, C, H, W) -> conv3x3(C->32) ReLU -> conv3x3(32->64) ReLU -> maxpool 2 -> flatten
    (N, 64*H/2*W/2) -> dense 128 ReLU [-> dropout] -> dense num_classes (logits).

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    h, w = spatial_sizes("digits_cnn", input_shape, 2, 2)
    c1, c2 = channels
    check_dense(
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


def lenet5(
    input_shape: Shape = (1, 28, 28), num_classes: int = 10, *, rng: RngLike = None
) -> Sequential:
    """LeNet-5 with ReLU and max-pooling (61,706 parameters for 28x28 inputs and 10 classes).

    (N, C, 28, 28) -> conv5x5(C->6, pad 2) ReLU -> maxpool 2 (6, 14, 14) -> conv5x5(6->16) ReLU
    -> maxpool 2 (16, 5, 5) -> flatten 400 -> dense 120 ReLU -> dense 84 ReLU -> dense classes.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    h, w = spatial_sizes("lenet5", input_shape, 2, 12)
    flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
    check_dense("lenet5", input_shape, (flat, 120), (84, num_classes))
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
    input_shape: Shape = (400,),
    num_classes: int = 10,
    *,
    hidden: int | tuple[int, ...] = (25,),
    activation: str = "sigmoid",
    rng: RngLike = None,
) -> Sequential:
    """Fully connected network: flatten -> [dense -> activation] per hidden size -> dense.

    (N, *input_shape) -> (N, prod(input_shape)) -> hidden layers -> (N, num_classes); the default
    is the classic 400-25-10 sigmoid network of the handwritten-digit exercise.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
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
    check_dense("mlp", input_shape, *zip(sizes, [*sizes[1:], num_classes]))
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(n_in, n_out, rng=rng), ACTIVATIONS[activation]()]
    return Sequential(*layers, Dense(sizes[-1], num_classes, rng=rng))


def cnn1d(
    input_shape: Shape = (1, 40),
    num_classes: int = 10,
    *,
    channels: tuple[int, int] = (32, 64),
    hidden: int = 128,
    rng: RngLike = None,
) -> Sequential:
    """1D CNN for MNIST-1D sequences: two 'same' convs of width 5, each followed by max-pool 2.

    (N, C, L) -> conv5(C->32) ReLU pool -> conv5(32->64) ReLU pool -> flatten (N, 64*(L//4))
    -> dense 128 ReLU -> dense num_classes.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    (length,) = spatial_sizes("cnn1d", input_shape, 1, 4)
    c1, c2 = channels
    check_dense("cnn1d", input_shape, (c2 * (length // 2 // 2), hidden), (hidden, num_classes))
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


def cnn3d(
    input_shape: Shape = (1, 16, 16, 16),
    num_classes: int = 10,
    *,
    channels: tuple[int, int] = (8, 16),
    hidden: int = 64,
    rng: RngLike = None,
) -> Sequential:
    """3D CNN for voxel volumes: two 3x3x3 'same' convs, each followed by a 2x2x2 max-pool.

    (N, C, D, H, W) -> conv3(C->8) ReLU pool -> conv3(8->16) ReLU pool -> flatten
    (N, 16*D/4*H/4*W/4) -> dense 64 ReLU -> dense num_classes.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    spatial = spatial_sizes("cnn3d", input_shape, 3, 4)
    c1, c2 = channels
    flat = c2 * math.prod(s // 2 // 2 for s in spatial)
    check_dense("cnn3d", input_shape, (flat, hidden), (hidden, num_classes))
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
    input_shape: Shape = (1, 8, 8),
    num_classes: int = 10,
    *,
    channels: tuple[int, int, int] = (64, 64, 128),
    hidden: int = 256,
    rng: RngLike = None,
) -> Sequential:
    """A binary LeNet in the BMXNet manner: first and last layers full precision, the rest 1-bit.

    (N, C, H, W) -> conv3x3(C->64) BN -> 1-bit conv3x3(64->64) BN maxpool 2 -> 1-bit
    conv3x3(64->128) BN maxpool 2 -> flatten -> 1-bit dense 256 BN -> dense num_classes.
    Each 1-bit layer binarizes its own input (sign, STE) and its weights; the batch norm after
    it sets the scale and the threshold of the signs that the next layer takes, and ``pack``
    folds it into the packed layer. Channel counts that are multiples of 64 fill whole words.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    h, w = spatial_sizes("binary_lenet", input_shape, 2, 4)
    c1, c2, c3 = channels
    flat = c3 * (h // 2 // 2) * (w // 2 // 2)
    check_dense("binary_lenet", input_shape, (flat, hidden), (hidden, num_classes))
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
