"""What every zoo builder shares: the size bounds and the checks of an input shape; and the
layout the residual nets share (``residual_net``: stem, stages of blocks, head)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deltanet.init import RngLike
from deltanet.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    Layer,
    ReLU,
    Sequential,
)

# Bounds that keep a typo from allocating gigabytes (--input-shape 100000000 once took 24 GB):
# the values of one example (1x1024x1024, 3x512x512, 100^3), and the weights of one dense
# layer (256 MiB of float32; 1 GiB when training with Adam).
MAX_INPUT_SIZE = 2**20
MAX_DENSE_WEIGHTS = 2**26

CONV: dict[int, Any] = {1: Conv1D, 2: Conv2D}
BATCH_NORM: dict[int, Any] = {1: BatchNorm1D, 2: BatchNorm2D}
# The smallest length or side the residual nets take: two halvings still leave 2 positions to pool.
MIN_SIZE = 8


def check_dense(name: str, input_shape: tuple[int, ...], *sizes: tuple[int, int]) -> None:
    """Refuse, before any is built, a dense layer ``(n_in, n_out)`` past ``MAX_DENSE_WEIGHTS``."""
    for n_in, n_out in sizes:
        if n_in * n_out > MAX_DENSE_WEIGHTS:
            raise ValueError(
                f"{name}: input shape {input_shape} would need a dense layer of {n_in:,} x "
                f"{n_out:,} = {n_in * n_out:,} weights, more than the zoo builds "
                f"({MAX_DENSE_WEIGHTS:,}). The input shape is one example's, without the batch "
                "axis; give a smaller one."
            )


def spatial_sizes(
    name: str, input_shape: tuple[int, ...], ndim: int, minimum: int
) -> tuple[int, ...]:
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


def check_widths(name: str, channels: Any, blocks: Any) -> tuple[tuple[int, ...], int]:
    """``(channels, blocks)`` of a residual net, checked: positive ints, one width per stage."""
    if isinstance(channels, int) or not isinstance(channels, Sequence) or not channels:
        raise ValueError(f"{name}: channels must be a tuple of widths, one per stage. Received: "
                         f"{channels!r}.")  # fmt: skip
    if not all(_positive(c) for c in channels):
        raise ValueError(f"{name}: channels must be positive ints. Received: {channels!r}.")
    if not _positive(blocks):
        raise ValueError(f"{name}: blocks must be a positive int. Received: {blocks!r}.")
    return tuple(int(c) for c in channels), int(blocks)


def _positive(n: Any) -> bool:
    return bool(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0)


def stage_plan(channels: tuple[int, ...], blocks: int) -> list[tuple[int, int, int]]:
    """``(c_in, c_out, stride)`` of each block: stage ``s`` has ``blocks`` blocks of width
    ``channels[s]``; every stage after the first halves the length (stride 2 in its first block).

    The float ResNets and their Bi-Real twins both follow it, so the twins line up stage by stage.
    """
    plan = []
    c_in = channels[0]
    for s, c_out in enumerate(channels):
        for b in range(blocks):
            plan.append((c_in, c_out, 2 if s > 0 and b == 0 else 1))
            c_in = c_out
    return plan


def residual_net(
    name: str,
    ndim: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: Any,
    blocks: Any,
    *,
    block: Callable[..., list[Layer]],
    stem_relu: bool,
    rng: RngLike,
    dtype: Any,
) -> Sequential:
    """A residual net over ``ndim`` spatial dims, checked and built in layer order:

    stem: conv3 (conv5 in 1D) C -> channels[0], BN, and a ReLU if ``stem_relu``
    stages: ``block(ndim, c_in, c_out, stride, rng=, dtype=)`` for each step of ``stage_plan``
    head: global average pool, flatten, dense num_classes
    """
    spatial_sizes(name, input_shape, ndim, MIN_SIZE)
    widths, n = check_widths(name, channels, blocks)
    check_dense(name, input_shape, (widths[-1], num_classes))
    stem_k = 5 if ndim == 1 else 3  # a wider first window over a 1D signal (cnn1d's is 5 too)
    layers: list[Layer] = [
        CONV[ndim](input_shape[0], widths[0], stem_k, padding=stem_k // 2, bias=False, rng=rng,
                   dtype=dtype),
        BATCH_NORM[ndim](widths[0], dtype=dtype),
    ]  # fmt: skip
    if stem_relu:
        layers.append(ReLU())
    for c_in, c_out, stride in stage_plan(widths, n):
        layers += block(ndim, c_in, c_out, stride, rng=rng, dtype=dtype)
    head = [GlobalAvgPool(), Flatten(), Dense(widths[-1], num_classes, rng=rng, dtype=dtype)]
    return Sequential(*layers, *head)
