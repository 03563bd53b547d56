"""Residual networks (He et al., 2016) in one or two spatial dims: ``resnet1d`` and ``resnet20``.

A basic block is ``ReLU(BN(conv3(ReLU(BN(conv3(x))))) + shortcut(x))``: the shortcut is the
identity where the block keeps the shape, and a 1x1 convolution with the block's stride and a
batch norm (a projection, He et al.'s "option B") where the width or the length changes. The
convolutions before a batch norm have no bias (the batch norm's shift takes its place). The
layout, shared with the Bi-Real twins (``common.residual_net``):

    stem: conv3 (conv5 in 1D) C -> channels[0], BN, ReLU
    stages: ``blocks`` basic blocks per width in ``channels``; stride 2 opens every stage
            after the first (``common.stage_plan``)
    head: global average pool, flatten, dense num_classes
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.init import RngLike
from deltanet.layers import Layer, ReLU, Residual, Sequential
from deltanet.zoo.common import BATCH_NORM, CONV, residual_net


def basic_block(
    ndim: int, c_in: int, c_out: int, stride: int, *, rng: RngLike, dtype: Any
) -> list[Layer]:
    """``[Residual(conv-BN-ReLU-conv-BN, shortcut), ReLU]``: (N, c_in, *s) -> (N, c_out, *s/stride).

    The shortcut is the identity (None) when the shape is kept, else 1x1 conv (stride) + BN.
    """
    conv, bn = CONV[ndim], BATCH_NORM[ndim]
    block = Sequential(
        conv(c_in, c_out, 3, stride, padding=1, bias=False, rng=rng, dtype=dtype),
        bn(c_out, dtype=dtype),
        ReLU(),
        conv(c_out, c_out, 3, padding=1, bias=False, rng=rng, dtype=dtype),
        bn(c_out, dtype=dtype),
    )
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(
            conv(c_in, c_out, 1, stride, bias=False, rng=rng, dtype=dtype), bn(c_out, dtype=dtype)
        )
    return [Residual(block, shortcut), ReLU()]


def resnet1d(
    input_shape: tuple[int, ...] = (1, 40),
    num_classes: int = 10,
    *,
    channels: tuple[int, ...] = (32, 64, 128),
    blocks: int = 2,
    dtype: Any = np.float32,
    rng: RngLike = None,
) -> Sequential:
    """Residual 1D CNN for MNIST-1D: (N, C, L) -> (N, num_classes), L >= 8.

    conv5 C->32 BN ReLU -> 2 basic blocks of 32 (L) -> 2 of 64 (L/2) -> 2 of 128 (L/4) ->
    global average pool -> dense num_classes (about 0.24 M parameters for (1, 40), 10 classes).

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    return residual_net("resnet1d", 1, input_shape, num_classes, channels, blocks,
                        block=basic_block, stem_relu=True, rng=rng, dtype=dtype)  # fmt: skip


def resnet20(
    input_shape: tuple[int, ...] = (3, 32, 32),
    num_classes: int = 10,
    *,
    channels: tuple[int, ...] = (16, 32, 64),
    blocks: int = 3,
    dtype: Any = np.float32,
    rng: RngLike = None,
) -> Sequential:
    """He et al.'s CIFAR ResNet-20 with projection shortcuts: (N, C, H, W) -> (N, num_classes).

    conv3 C->16 BN ReLU -> 3 basic blocks of 16 (HxW) -> 3 of 32 (H/2) -> 3 of 64 (H/4) ->
    global average pool -> dense num_classes; 272,474 parameters for (3, 32, 32) and 10 classes.
    Any channel count and any H, W >= 8 give the same net, e.g. ``input_shape=(1, 28, 28)``
    for MNIST-sized images (28 -> 14 -> 7). ``blocks=n`` gives ResNet-(6n+2).

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    return residual_net("resnet20", 2, input_shape, num_classes, channels, blocks,
                        block=basic_block, stem_relu=True, rng=rng, dtype=dtype)  # fmt: skip
