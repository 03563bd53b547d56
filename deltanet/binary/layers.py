"""Quantized layers in the BMXNet manner: ``QActivation``, ``QDense``, ``QConv1D/2D/3D``.

A quantized layer keeps latent float weights (a ``Parameter`` the ordinary optimizers update)
and quantizes both its input (``act_bit``) and its weights (``weight_bit``, with ``scaling``) on
every forward pass; the backward pass is the straight-through estimator of ``quantizers``.

    QDense: y = q_a(x) · (alpha q_w(W))ᵀ + b        QConv: y = q_a(x) ⋆ (alpha q_w(W)) + b

With ``act_bit = weight_bit = 1`` the dot products are of ±1 vectors: ``to_packed`` gives the
``PackedDense`` / ``PackedConv`` that computes them by XOR and popcount on bit-packed words (what
``deltanet.binary.pack`` asks every layer for). Zero padding of a convolution pads ``q_a(x)``
with 0 (neither +1 nor -1), as BMXNet and PyTorch do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deltanet.binary.packed import PackedConv, PackedDense, pack_conv_weight
from deltanet.binary.popcount import pack_signs
from deltanet.binary.quantizers import (
    SCALINGS,
    approx_sign_backward,
    approx_sign_forward,
    quantize_act_backward,
    quantize_act_forward,
    quantize_weight_backward,
    quantize_weight_forward,
    weight_scale,
)
from deltanet.fast.conv import conv_backward, conv_forward
from deltanet.init import RngLike
from deltanet.layers.base import Layer, Parameter
from deltanet.layers.conv import ConvND
from deltanet.layers.dense import Dense
from deltanet.layers.norm import BatchNormND
from deltanet.layers.registry import register_layer
from deltanet.ops.dense import dense_backward, dense_forward


def _check_bits(where: str, name: str, bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 32:
        raise ValueError(f"{where}: {name} must be an int from 1 to 32. Received: {bits!r}.")
    return int(bits)


def _check_scaling(where: str, scaling: Any) -> str:
    if scaling not in SCALINGS:
        raise ValueError(
            f"{where}: scaling must be one of 'none', 'layer', 'channel'. Received: {scaling!r}."
        )
    return str(scaling)


@register_layer
class QActivation(Layer):
    """Quantize activations to ``act_bit`` bits: 1 is ``sign`` (STE), 32 the identity.

    ``approx=True`` (1 bit only) takes the ApproxSign backward ``(2 - 2|x|) 1[|x| <= 1]``.

    Raises ValueError for an ``act_bit`` that is not an int from 1 to 32 or ``approx=True`` with
    more than 1 bit, TypeError for an ``approx`` that is not a bool.
    """

    def __init__(self, act_bit: int = 1, approx: bool = False) -> None:
        super().__init__()
        self.act_bit = _check_bits("QActivation", "act_bit", act_bit)
        if not isinstance(approx, bool):
            raise TypeError(f"QActivation: approx must be True or False. Received: {approx!r}.")
        if approx and self.act_bit != 1:
            raise ValueError(
                f"QActivation: approx=True needs act_bit=1. Received: act_bit={act_bit}."
            )
        self.approx = approx

    @property
    def straight_through(self) -> bool:
        """Whether the backward pass is a straight-through estimator, not the derivative of the
        forward (below 32 bits: ``deltanet.gradcheck`` says its rows differ by design)."""
        return self.act_bit < 32

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if self.approx:
            return approx_sign_forward(x)
        return quantize_act_forward(x, self.act_bit)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        op = approx_sign_backward if self.approx else quantize_act_backward
        return op(dy, cache)[0]

    def get_config(self) -> dict[str, Any]:
        return {"act_bit": self.act_bit, "approx": self.approx}


class _Quantized:
    """What QDense and QConv share: the quantization arguments and the quantized forward."""

    act_bit: int
    weight_bit: int
    scaling: str
    weight: Parameter
    bias: Parameter | None

    def _setup_quant(self, where: str, act_bit: Any, weight_bit: Any, scaling: Any) -> None:
        self.act_bit = _check_bits(where, "act_bit", act_bit)
        self.weight_bit = _check_bits(where, "weight_bit", weight_bit)
        self.scaling = _check_scaling(where, scaling)

    @property
    def straight_through(self) -> bool:
        """Whether the backward pass is a straight-through estimator, not the derivative of the
        forward: inputs or weights below 32 bits (see ``QActivation.straight_through``)."""
        return self.act_bit < 32 or self.weight_bit < 32

    @property
    def is_binary(self) -> bool:
        """Whether inputs and weights are both 1-bit (the layer that ``pack`` bit-packs)."""
        return self.act_bit == 1 and self.weight_bit == 1

    def quantized_weight(self) -> np.ndarray:
        """``alpha q_w(W)``: the weight the forward pass multiplies by."""
        return quantize_weight_forward(self.weight.data, self.weight_bit, self.scaling)[0]

    def _quant_config(self) -> dict[str, Any]:
        return {"act_bit": self.act_bit, "weight_bit": self.weight_bit, "scaling": self.scaling}

    def to_packed(self, following: Layer | None = None) -> tuple[Layer, bool] | None:
        """``(packed layer, folded)`` for ``deltanet.binary.pack``; None unless ``is_binary``.

        ``following`` is the layer after this one in a chain (or None). A ``BatchNorm*`` over
        this layer's outputs with running statistics is folded into the packed affine
        (``folded`` True): ``s = gamma / sqrt(var + eps)``, ``scale = alpha s``,
        ``shift = (b - mean) s + beta``.
        """
        if not self.is_binary:
            return None
        w = self.weight.data
        n_out = w.shape[0]
        scale = np.broadcast_to(weight_scale(w.astype(np.float64), self.scaling).ravel(), (n_out,))
        shift = np.zeros(n_out) if self.bias is None else self.bias.data.astype(np.float64)
        fold = _batch_norm_affine(following, n_out)
        if fold is not None:
            s, t = fold
            scale, shift = scale * s, shift * s + t
        packed, bits = self._packed_shell()
        packed.set_packed(bits, scale, shift)
        return packed, fold is not None

    def _packed_shell(self) -> tuple[PackedDense | PackedConv, np.ndarray]:
        """The empty packed layer of this shape and ``sign(W)`` as its ``weight_bits``."""
        raise NotImplementedError


def _batch_norm_affine(bn: Layer | None, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(s, t)`` in float64 with ``bn(z) = z s + t`` in eval mode, when ``bn`` is a batch norm
    over ``channels`` outputs with running statistics; None otherwise."""
    if not isinstance(bn, BatchNormND) or bn.num_features != channels:
        return None
    if bn.running_mean is None or bn.running_var is None:  # track_running_stats=False
        return None
    gamma, beta = bn.affine_params(np.float64)
    s = gamma / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    return s, beta - bn.running_mean.astype(np.float64) * s


@register_layer
class QDense(_Quantized, Dense):
    """Quantized fully connected layer: x (N, in_features) -> y (N, out_features).

    ``y = q_a(x) · (alpha q_w(W))ᵀ + b``; the weight (out_features, in_features) stays float.

    Raises ValueError for bits that are not ints from 1 to 32 or a ``scaling`` other than none,
    layer or channel, and what ``Dense`` raises for its sizes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        act_bit: int = 1,
        weight_bit: int = 1,
        scaling: str = "none",
        *,
        rng: RngLike = None,
        dtype: Any = np.float32,
    ) -> None:
        self._setup_quant(f"QDense(in_features={in_features!r})", act_bit, weight_bit, scaling)
        super().__init__(in_features, out_features, bias, rng=rng, dtype=dtype)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """x: (N, in_features) -> y: (N, out_features); the input was checked as ``Dense``'s."""
        xq, ca = quantize_act_forward(x, self.act_bit)
        wq, cw = quantize_weight_forward(self.weight.data, self.weight_bit, self.scaling)
        b = None if self.bias is None else self.bias.data
        y, cd = dense_forward(xq, wq, b)
        return y, (cd, ca, cw)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray | None:
        """dy: (N, out_features) -> dx: (N, in_features); adds into weight.grad and bias.grad."""
        cd, ca, cw = cache
        dxq, dwq, db = dense_backward(dy, cd, input_grad)
        self.weight.grad += quantize_weight_backward(dwq, cw)[0]
        if self.bias is not None:
            self.bias.grad += db
        return None if dxq is None else quantize_act_backward(dxq, ca)[0]

    def get_config(self) -> dict[str, Any]:
        return {**Dense.get_config(self), **self._quant_config()}

    def _packed_shell(self) -> tuple[PackedDense, np.ndarray]:
        packed = PackedDense(self.in_features, self.out_features, dtype=self.weight.dtype)
        return packed, pack_signs(self.weight.data)


def _qconv_forward(x, w, b, stride, padding, dilation, groups, act_bit, weight_bit, scaling):
    """The quantized convolution as an op pair: quantize, then ``conv_forward``."""
    xq, ca = quantize_act_forward(x, act_bit)
    wq, cw = quantize_weight_forward(w, weight_bit, scaling)
    y, cc = conv_forward(xq, wq, b, stride, padding, dilation, groups)
    return y, (cc, ca, cw)


def _qconv_backward(dy: np.ndarray, cache: tuple, input_grad: bool = True) -> tuple:
    cc, ca, cw = cache
    dxq, dwq, db = conv_backward(dy, cc, input_grad)
    dx = None if dxq is None else quantize_act_backward(dxq, ca)[0]
    return dx, quantize_weight_backward(dwq, cw)[0], db


@register_layer
class QConvND(_Quantized, ConvND):
    """Quantized convolution over ``ndim`` spatial dims; arguments as ``ConvND`` plus
    ``act_bit``, ``weight_bit`` and ``scaling``: ``y = q_a(x) ⋆ (alpha q_w(W)) + b``.

    Raises ValueError for bits that are not ints from 1 to 32 or a ``scaling`` other than none,
    layer or channel, and what ``ConvND`` raises for its arguments.
    """

    _backward_op = staticmethod(_qconv_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        act_bit: int = 1,
        weight_bit: int = 1,
        scaling: str = "none",
        *,
        rng: RngLike = None,
        dtype: Any = np.float32,
    ) -> None:
        where = f"{type(self).__name__}(in_channels={in_channels!r})"
        self._setup_quant(where, act_bit, weight_bit, scaling)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            rng=rng, dtype=dtype,
        )  # fmt: skip

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """(N, in_channels, *spatial) -> (N, out_channels, *out)."""
        hyper = (self.stride, self.padding, self.dilation, self.groups)
        quant = (self.act_bit, self.weight_bit, self.scaling)
        return self._run(_qconv_forward, x, *hyper, *quant)

    def get_config(self) -> dict[str, Any]:
        return {**ConvND.get_config(self), **self._quant_config()}

    def _packed_shell(self) -> tuple[PackedConv, np.ndarray]:
        hyper = (self.kernel_size, self.stride, self.padding, self.dilation, self.groups)
        packed = PackedConv(self.in_channels, self.out_channels, *hyper, dtype=self.weight.dtype)
        return packed, pack_conv_weight(self.weight.data, self.groups)


@register_layer
class QConv1D(QConvND):
    """1-D quantized convolution: x (N, C, L)."""

    spatial_dims = 1


@register_layer
class QConv2D(QConvND):
    """2-D quantized convolution: x (N, C, H, W)."""

    spatial_dims = 2


@register_layer
class QConv3D(QConvND):
    """3-D quantized convolution: x (N, C, D, H, W)."""

    spatial_dims = 3
