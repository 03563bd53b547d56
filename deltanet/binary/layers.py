"""Packed inference layers: weights as bits, dot products by XOR and popcount.

``PackedDense`` and ``PackedConv`` hold a 1-bit layer's weights as uint64 words (buffers, so
they save and load like batch-norm statistics) and a per-output affine applied to the exact
integer count: ``y = count * scale + shift``, where ``scale`` is the weight scaling ``alpha``
times a folded batch norm's ``gamma / sqrt(var + eps)`` and ``shift`` holds the bias and the
rest of the batch norm. They are inference-only: train the ``QDense`` / ``QConv`` they came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deltanet.binary.ops import conv_counts, conv_geometry, conv_weight_words, dense_counts
from deltanet.layers.base import Layer, check_input
from deltanet.layers.conv import _int_tuple, _positive_int
from deltanet.layers.dense import _float_dtype
from deltanet.ops.window import resolve_padding


class _PackedBase(Layer):
    """Buffers ``weight_bits`` (uint64), ``scale`` and ``shift``; no parameters, no backward."""

    def _alloc(self, out: int, reduced: int, dtype: Any) -> None:
        self.dtype = _float_dtype(type(self).__name__, dtype)
        self.weight_bits = np.zeros((out, -(-reduced // 64)), np.uint64)
        self.scale = np.ones(out, self.dtype)
        self.shift = np.zeros(out, self.dtype)
        self._words: np.ndarray | None = None  # compute layout, derived from weight_bits

    def buffers(self) -> dict[str, np.ndarray]:
        return {"weight_bits": self.weight_bits, "scale": self.scale, "shift": self.shift}

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        mine = self.buffers()
        if set(buffers) != set(mine):
            raise ValueError(
                f"{self.label()}: expected buffers {sorted(mine)}. Received: {sorted(buffers)}."
            )
        for name, value in mine.items():
            new = np.asarray(buffers[name])
            if new.shape != value.shape:
                raise ValueError(
                    f"{self.label()}: {name} must have shape {value.shape}. Received: {new.shape}."
                )
            value[...] = new
        self._words = None

    def set_packed(self, weight_bits: np.ndarray, scale: Any, shift: Any) -> None:
        """Install packed weights and the per-output affine (what ``pack`` computes)."""
        self.load_buffers(
            {
                "weight_bits": weight_bits,
                "scale": np.broadcast_to(np.asarray(scale, self.dtype), self.scale.shape),
                "shift": np.broadcast_to(np.asarray(shift, self.dtype), self.shift.shape),
            }
        )

    def _affine(self, counts: np.ndarray, dtype: np.dtype) -> np.ndarray:
        shape = (1, -1) + (1,) * (counts.ndim - 2)
        scale, shift = self.scale.reshape(shape), self.shift.reshape(shape)
        return (counts.astype(dtype) * scale.astype(dtype) + shift.astype(dtype)).astype(dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise ValueError(
            f"{self.label()}: a packed layer is inference-only and has no backward pass. "
            "Train the quantized model (QDense / QConv) and pack it again."
        )


class PackedDense(_PackedBase):
    """1-bit dense layer on packed bits: x (N, in_features) -> y (N, out_features).

    ``y = (K - 2 popcount(sign(x) XOR sign(W))) * scale + shift``; weight_bits (out, ceil(K/64)).
    """

    def __init__(self, in_features: int, out_features: int, *, dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_features = _positive_int("PackedDense", "in_features", in_features)
        self.out_features = _positive_int("PackedDense", "out_features", out_features)
        self._alloc(self.out_features, self.in_features, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_input(self, x, 0, self.in_features)
        counts = dense_counts(x, self.weight_bits, self.in_features)
        self._cache = None
        return self._affine(counts, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "dtype": self.dtype.name,
        }


class PackedConv(_PackedBase):
    """1-bit convolution on packed bits, any number of spatial dims (``len(kernel_size)``).

    x (N, in_channels, *in) -> y (N, out_channels, *out); arguments as ``ConvND``.
    ``weight_bits`` (out_channels, ceil(K_pos * C_g / 64)): the signs of W in (kernel position,
    channel) order; the layer re-lays them as one run of words per position when it first runs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        where = f"PackedConv(in_channels={in_channels!r})"
        self.in_channels = _positive_int(where, "in_channels", in_channels)
        self.out_channels = _positive_int(where, "out_channels", out_channels)
        if not isinstance(kernel_size, (list, tuple)) or not 1 <= len(kernel_size) <= 3:
            raise ValueError(
                f"{where}: kernel_size must be a tuple of 1 to 3 ints. Received: {kernel_size!r}."
            )
        nd = self.ndim = len(kernel_size)
        self.kernel_size = _int_tuple(where, "kernel_size", kernel_size, nd, 1)
        self.stride = _int_tuple(where, "stride", stride, nd, 1)
        self.dilation = _int_tuple(where, "dilation", dilation, nd, 1)
        self.groups = _positive_int(where, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{where}: groups must divide in_channels and out_channels. Received: "
                f"groups={groups}, in_channels={in_channels}, out_channels={out_channels}."
            )
        self.padding = self._check_padding(where, padding)
        c_g = self.in_channels // self.groups
        self._alloc(self.out_channels, c_g * math.prod(self.kernel_size), dtype)

    def _check_padding(self, where: str, padding: Any) -> str | tuple:
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{where}: padding must be an int, a tuple, 'valid' or 'same'.")
            return padding
        try:
            ones = (1,) * self.ndim
            pairs = resolve_padding(padding, ones, self.kernel_size, self.stride, self.dilation)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: {err}") from None
        return tuple(tuple(p) for p in pairs)

    def words(self) -> np.ndarray:
        """The weights as (out_channels, K_pos, ceil(C_g/64)) words, derived once."""
        if self._words is None:
            c_g, k_pos = self.in_channels // self.groups, math.prod(self.kernel_size)
            self._words = conv_weight_words(self.weight_bits, c_g, k_pos)
        return self._words

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_input(self, x, self.ndim, self.in_channels)
        hyper = (self.kernel_size, self.stride, self.padding, self.dilation)
        try:
            conv_geometry(x.shape[2:], *hyper)
        except ValueError as err:
            raise ValueError(f"{self.label()}: {err}") from None
        counts = conv_counts(x, self.words(), *hyper, self.groups)
        self._cache = None
        return self._affine(counts, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "dtype": self.dtype.name,
        }
