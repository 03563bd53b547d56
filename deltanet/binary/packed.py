"""Packed inference layers: weights as bits, dot products by XOR and popcount.

``PackedDense`` and ``PackedConv`` hold a 1-bit layer's weights as uint64 words (buffers, so
they save and load like batch-norm statistics) and a per-output affine applied to the exact
integer count: ``y = count * scale + shift``, where ``scale`` is the weight scaling ``alpha``
times a folded batch norm's ``gamma / sqrt(var + eps)`` and ``shift`` holds the bias and the
rest of the batch norm. They are inference-only: train the ``QDense`` / ``QConv`` they came from.

The count ops: ``dense_counts(x, w_words, k)[n, o] = sign(x_n) · sign(W_o)`` and ``conv_counts``
the same for every window of a convolution, where ``sign(0) = +1``, computed as
``K - 2 popcount(a XOR w)``. Convolution packs the incoming activations once, along the channels
of each spatial position (``(N, G, *spatial, W_c)`` words), then gathers the windows of words;
the weights are laid out the same way, ``(C_out, K_pos, W_c)``. Zero padding is neither +1 nor
-1: a padded position's words are 0 (all -1), so its XOR counts the +1 weights of that kernel
position, ``pc_w[o, k]``; these are subtracted again and only valid positions count towards K:

    dot[p, o] = C_g * n_valid[p] - 2 * (d[p, o] - sum_{k padded at p} pc_w[o, k])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deltanet import fast
from deltanet.binary.popcount import (
    pack_bits,
    pack_channel_signs,
    pack_signs,
    unpack_bits,
    xor_popcount,
)
from deltanet.layers.base import Layer
from deltanet.layers.registry import register_layer
from deltanet.layers.validate import (
    check_input,
    check_state_shape,
    conv_padding,
    float_dtype,
    int_tuple,
    positive_int,
)
from deltanet.ops.conv import conv_geometry
from deltanet.ops.window import Pads, sliding_windows

# --- the count ops ------------------------------------------------------------------------------


def dense_counts(x: np.ndarray, w_words: np.ndarray, k: int) -> np.ndarray:
    """x: (N, K) float, w_words: (O, ceil(K/64)) -> (N, O) int32 dot products of signs."""
    d = xor_popcount(pack_signs(x), w_words)
    return np.int32(k) - 2 * d


def pack_conv_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """Weight (C_out, C_g, *k) -> storage words (C_out, ceil(K_pos * C_g / 64)), (k, c) order."""
    bits = np.moveaxis(w >= 0, 1, -1)  # (C_out, *k, C_g): channels innermost, as the input
    return pack_bits(bits.reshape(w.shape[0], -1))


def conv_weight_words(stored: np.ndarray, c_g: int, k_pos: int) -> np.ndarray:
    """Storage words -> compute layout (C_out, K_pos, ceil(C_g/64)): one word run per position."""
    bits = unpack_bits(stored, k_pos * c_g).reshape(stored.shape[0], k_pos, c_g)
    return pack_bits(bits)


def checked_geometry(
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: int | str | Sequence,
    dilation: Sequence[int],
) -> tuple[Pads, tuple[int, ...]]:
    """``(pads, out)``: the ``(lo, hi)`` pads and the output size (``ops.conv.conv_geometry``),
    checked: the kernel fits the padded input."""
    pads, out = conv_geometry(spatial, kernel, stride, padding, dilation)
    if min(out) < 1:
        raise ValueError(
            f"the kernel is larger than the padded input. Received: input size {tuple(spatial)}, "
            f"padding {pads}, kernel_size {tuple(kernel)}, dilation {tuple(dilation)}."
        )
    return pads, out


def conv_counts(
    x: np.ndarray,
    w_words: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: int | str | Sequence,
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """x: (N, C, *in) float, w_words: (C_out, K_pos, W_c) -> (N, C_out, *out) int32 counts."""
    n, c, *spatial = x.shape
    nd, c_g, c_out = len(kernel), c // groups, w_words.shape[0]
    pads, out = checked_geometry(spatial, kernel, stride, padding, dilation)
    if fast.enabled():
        counts = np.empty((n, c_out, *out), np.int32)
        geometry = (kernel, stride, dilation, pads, out)
        return conv_numba(x, w_words, geometry, groups, None, None, counts)
    k_pos, p = math.prod(kernel), math.prod(out)
    # (N, G, *in, W_c): packed once, before the windows repeat each position K_pos times
    words = pack_channel_signs(x.reshape(n * groups, c_g, -1))
    w_c = words.shape[-1]
    words = words.reshape(n, groups, *spatial, w_c)
    words = np.pad(words, ((0, 0), (0, 0), *pads, (0, 0)))  # zero words: fixed below
    win = sliding_windows(np.moveaxis(words, -1, 2), kernel, stride, dilation, out)
    # (N, G, W_c, *out, *k) -> (G, N, *out, *k, W_c): one row of K_pos * W_c words per window
    axes = (1, 0, *range(3, 3 + 2 * nd), 2)
    rows = win.transpose(axes).reshape(groups, n * p, k_pos * w_c)
    d = xor_popcount(rows, w_words.reshape(groups, c_out // groups, k_pos * w_c))
    valid, corr = _padding_terms(spatial, pads, kernel, stride, dilation, out, w_words)
    corr = corr.reshape(p, groups, c_out // groups).transpose(1, 0, 2)  # (G, P, O_g)
    d = d.reshape(groups, n, p, -1) - corr[:, None]
    counts = (c_g * valid)[None, None, :, None] - 2 * d  # (G, N, P, O_g)
    return np.ascontiguousarray(counts.transpose(1, 0, 3, 2)).reshape(n, c_out, *out)


def conv_numba(x, w_words, geometry, groups, scale, shift, out):
    """``conv_counts`` in one numba kernel, into ``out (N, C_out, *out)``: int32 counts, or with
    ``scale`` and ``shift`` the affine ``count * scale + shift`` in out's dtype. ``geometry``:
    ``(kernel, stride, dilation, pads, out)``. No padded copy and no window copy: the kernel
    reads the packed words ``(N, G, *in, W_c)`` and skips the padded taps."""
    from deltanet.binary import popcount_numba  # imports numba: only when it is wanted

    kernel, stride, dilation, pads, size = geometry
    n, c, *spatial = x.shape
    c_out, k_pos, w_c = w_words.shape
    words = pack_channel_signs(x.reshape(n * groups, c // groups, -1))
    xw = words.reshape(n, groups, *fast.lift3d(spatial), w_c)
    # (G, K_pos, W_c, O_g): the output channels innermost, the loop the kernel vectorises
    wt = np.ascontiguousarray(
        w_words.reshape(groups, c_out // groups, k_pos, w_c).transpose(0, 2, 3, 1)
    )
    lo = (0,) * (3 - len(pads)) + tuple(p[0] for p in pads)  # the lifted axes: no padding
    lift = (fast.lift3d(kernel), fast.lift3d(stride), fast.lift3d(dilation), lo, fast.lift3d(size))
    affine = scale is not None
    if not affine:
        scale = shift = np.zeros(c_out, out.dtype)
    flat = out.reshape(n, c_out, -1)
    popcount_numba.conv_counts(xw, wt, *lift, c // groups, scale, shift, affine, flat)
    return out


def _padding_terms(spatial, pads, kernel, stride, dilation, out, w_words):
    """``n_valid (P,)`` valid taps per output position and ``corr (P, C_out)``, the +1 weights
    that padded taps added to the XOR counts."""
    ones = np.pad(np.ones(spatial, np.int32), pads)
    taps = sliding_windows(ones, kernel, stride, dilation, out).reshape(math.prod(out), -1)
    valid = taps.sum(1, dtype=np.int32)
    if not any(lo or hi for lo, hi in pads):
        return valid, np.zeros((taps.shape[0], w_words.shape[0]), np.int32)
    pc_w = np.bitwise_count(w_words).sum(-1, dtype=np.int32)  # (C_out, K_pos)
    return valid, (1 - taps) @ pc_w.T


# --- the layers ---------------------------------------------------------------------------------


class _PackedBase(Layer):
    """Buffers ``weight_bits`` (uint64), ``scale`` and ``shift``; no parameters, no backward."""

    def _alloc(self, out: int, reduced: int, dtype: Any) -> None:
        self.dtype = float_dtype(type(self).__name__, dtype)
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
            value[...] = check_state_shape(self, name, value, buffers[name])
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

    def _apply_affine(self, counts: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """``counts * scale + shift`` per output channel (axis 1), in ``dtype``."""
        shape = (1, -1) + (1,) * (counts.ndim - 2)
        scale, shift = self.scale.reshape(shape), self.shift.reshape(shape)
        return (counts.astype(dtype) * scale.astype(dtype) + shift.astype(dtype)).astype(dtype)

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        raise ValueError(
            f"{self.label()}: a packed layer is inference-only and has no backward pass. "
            "Train the quantized model (QDense / QConv) and pack it again."
        )


@register_layer
class PackedDense(_PackedBase):
    """1-bit dense layer on packed bits: x (N, in_features) -> y (N, out_features).

    ``y = (K - 2 popcount(sign(x) XOR sign(W))) * scale + shift``; weight_bits (out, ceil(K/64)).
    """

    def __init__(self, in_features: int, out_features: int, *, dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_features = positive_int("PackedDense", "in_features", in_features)
        self.out_features = positive_int("PackedDense", "out_features", out_features)
        self._alloc(self.out_features, self.in_features, dtype)

    def _check_input(self, x: Any) -> np.ndarray:
        return check_input(self, x, 0, self.in_features)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        counts = dense_counts(x, self.weight_bits, self.in_features)
        return self._apply_affine(counts, x.dtype), None

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "dtype": self.dtype.name,
        }


@register_layer
class PackedConv(_PackedBase):
    """1-bit convolution on packed bits; ``spatial_dims`` is ``len(kernel_size)`` (1 to 3).

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
        self.in_channels = positive_int(where, "in_channels", in_channels)
        self.out_channels = positive_int(where, "out_channels", out_channels)
        if not isinstance(kernel_size, (list, tuple)) or not 1 <= len(kernel_size) <= 3:
            raise ValueError(
                f"{where}: kernel_size must be a tuple of 1 to 3 ints. Received: {kernel_size!r}."
            )
        nd = self.spatial_dims = len(kernel_size)
        self.kernel_size = int_tuple(where, "kernel_size", kernel_size, nd, 1)
        self.stride = int_tuple(where, "stride", stride, nd, 1)
        self.dilation = int_tuple(where, "dilation", dilation, nd, 1)
        self.groups = positive_int(where, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{where}: groups must divide in_channels and out_channels. Received: "
                f"groups={groups}, in_channels={in_channels}, out_channels={out_channels}."
            )
        self.padding = conv_padding(where, padding, self.kernel_size, self.stride, self.dilation)
        c_g = self.in_channels // self.groups
        self._alloc(self.out_channels, c_g * math.prod(self.kernel_size), dtype)

    @property
    def ndim(self) -> int:
        """The number of spatial dims (``spatial_dims``), as ``ConvND.ndim``."""
        return self.spatial_dims

    def words(self) -> np.ndarray:
        """The weights as (out_channels, K_pos, ceil(C_g/64)) words, derived once."""
        if self._words is None:
            c_g, k_pos = self.in_channels // self.groups, math.prod(self.kernel_size)
            self._words = conv_weight_words(self.weight_bits, c_g, k_pos)
        return self._words

    def _check_input(self, x: Any) -> np.ndarray:
        return check_input(self, x, self.spatial_dims, self.in_channels)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        hyper = (self.kernel_size, self.stride, self.padding, self.dilation)
        try:
            checked_geometry(x.shape[2:], *hyper)
        except ValueError as err:
            raise ValueError(f"{self.label()}: {err}") from None
        if fast.enabled() and x.dtype in (np.float32, np.float64):  # counts and affine fused
            pads, out = checked_geometry(x.shape[2:], *hyper)
            y = np.empty((x.shape[0], self.out_channels, *out), x.dtype)
            geometry = (self.kernel_size, self.stride, self.dilation, pads, out)
            scale, shift = self.scale.astype(x.dtype), self.shift.astype(x.dtype)
            return conv_numba(x, self.words(), geometry, self.groups, scale, shift, y), None
        counts = conv_counts(x, self.words(), *hyper, self.groups)
        return self._apply_affine(counts, x.dtype), None

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
