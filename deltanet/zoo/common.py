"""What every zoo builder shares: the size bounds and the checks of an input shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Bounds that keep a typo from allocating gigabytes (--input-shape 100000000 once took 24 GB):
# the values of one example (1x1024x1024, 3x512x512, 100^3), and the weights of one dense
# layer (256 MiB of float32; 1 GiB when training with Adam).
MAX_INPUT_SIZE = 2**20
MAX_DENSE_WEIGHTS = 2**26


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
