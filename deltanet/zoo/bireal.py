"""Bi-Real nets (Liu et al., ECCV 2018): ``bireal_resnet1d`` and ``bireal_resnet20``.

Every binary convolution has a real-valued shortcut of its own, so the real activations of the
block below reach the block above, whatever the signs lose:

    y = BN(BinaryConv3(ApproxSign(x))) + shortcut(x)

- ``QActivation(1, approx=True)``: ``sign`` forward, the ApproxSign gradient
  ``(2 - 2|x|) 1[|x| <= 1]`` backward. The convolution after it quantizes its input again
  (``act_bit=1``, so ``pack`` sees a 1-bit layer); on ±1 inputs that second sign is the identity
  both ways (its STE passes ``dy`` where ``|x| <= 1``, i.e. everywhere), so the gradient that
  reaches ``x`` is ApproxSign's.
- ``QConv*(act_bit=1, weight_bit=1, scaling="channel")``: weights ``mean|W_o| sign(W_o)``.
- the shortcut is the identity, or where the block halves the length or changes the width, a
  real-valued average pool 2 (ceil mode: odd sizes give the conv's size) + 1x1 conv + BN.

Stem (conv3, conv5 in 1D, + BN) and head (global average pool, dense) are full precision. No ReLU
anywhere: with ``sign(0) = +1`` a ReLU before a sign would make every sign +1. The stage layout is
the float twin's (``common.residual_net``): each basic block of ``resnet20`` / ``resnet1d`` (two
convs) is two Bi-Real blocks here, the first with the stride.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.binary.layers import QActivation, QConv1D, QConv2D
from deltanet.init import RngLike
from deltanet.layers import AvgPool1D, AvgPool2D, Layer, Residual, Sequential
from deltanet.zoo.common import BATCH_NORM, CONV, residual_net

QCONV: dict[int, Any] = {1: QConv1D, 2: QConv2D}
AVG_POOL: dict[int, Any] = {1: AvgPool1D, 2: AvgPool2D}


def bireal_block(
    ndim: int, c_in: int, c_out: int, stride: int, *, rng: RngLike, dtype: Any
) -> Residual:
    """``BN(BinaryConv3(ApproxSign(x))) + shortcut(x)``: (N, c_in, *s) -> (N, c_out, *s/stride)."""
    block = Sequential(
        QActivation(1, approx=True),
        QCONV[ndim](
            c_in, c_out, 3, stride, padding=1, bias=False, act_bit=1, weight_bit=1,
            scaling="channel", rng=rng, dtype=dtype,
        ),
        BATCH_NORM[ndim](c_out, dtype=dtype),
    )  # fmt: skip
    if stride == 1 and c_in == c_out:
        return Residual(block)
    shortcut: list[Layer] = []
    if stride != 1:
        shortcut.append(AVG_POOL[ndim](stride, ceil_mode=True))
    shortcut += [
        CONV[ndim](c_in, c_out, 1, bias=False, rng=rng, dtype=dtype),
        BATCH_NORM[ndim](c_out, dtype=dtype),
    ]
    return Residual(block, Sequential(*shortcut))


def bireal_pair(
    ndim: int, c_in: int, c_out: int, stride: int, *, rng: RngLike, dtype: Any
) -> list[Layer]:
    """``resnet.basic_block``'s twin: its two convs, each a Bi-Real block; the first strides."""
    return [
        bireal_block(ndim, c_in, c_out, stride, rng=rng, dtype=dtype),
        bireal_block(ndim, c_out, c_out, 1, rng=rng, dtype=dtype),
    ]


def bireal_resnet1d(
    input_shape: tuple[int, ...] = (1, 40),
    num_classes: int = 10,
    *,
    channels: tuple[int, ...] = (32, 64, 128),
    blocks: int = 2,
    dtype: Any = np.float32,
    rng: RngLike = None,
) -> Sequential:
    """Bi-Real twin of ``resnet1d``: (N, C, L) -> (N, num_classes), L >= 8; 12 binary convs.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    return residual_net("bireal_resnet1d", 1, input_shape, num_classes, channels, blocks,
                        block=bireal_pair, stem_relu=False, rng=rng, dtype=dtype)  # fmt: skip


def bireal_resnet20(
    input_shape: tuple[int, ...] = (3, 32, 32),
    num_classes: int = 10,
    *,
    channels: tuple[int, ...] = (16, 32, 64),
    blocks: int = 3,
    dtype: Any = np.float32,
    rng: RngLike = None,
) -> Sequential:
    """Bi-Real twin of ``resnet20``: (N, C, H, W) -> (N, num_classes), H, W >= 8; 18 binary
    3x3 convs. ``input_shape=(1, 28, 28)`` is the variant for MNIST-sized images.

    Raises ValueError for an ``input_shape`` the model cannot take or sizes out of range, naming the
    model and the shape (``build_model`` checks its arguments the same way).
    """
    return residual_net("bireal_resnet20", 2, input_shape, num_classes, channels, blocks,
                        block=bireal_pair, stem_relu=False, rng=rng, dtype=dtype)  # fmt: skip
