"""Convolution layers for any number of spatial dims: one ``ConvND``, one ``ConvTransposeND``.

``Conv1D``/``Conv2D``/``Conv3D`` (and the transposed ones) only fix ``spatial_dims``, the number of
spatial dims; the math lives in ``deltanet.ops.conv``. Arguments, weight layouts and the default
initialisation follow PyTorch's ``nn.Conv*d`` / ``nn.ConvTranspose*d``, so weights move 1:1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from deltanet.fast.conv import (
    conv_backward,
    conv_forward,
    conv_transpose_backward,
    conv_transpose_forward,
)
from deltanet.fast.plan import ALGORITHMS
from deltanet.init import RngLike, as_rng, torch_default
from deltanet.layers.base import Layer, Parameter
from deltanet.layers.registry import register_layer
from deltanet.layers.validate import (
    check_input,
    check_weight_dtype,
    conv_padding,
    flag,
    float_dtype,
    int_tuple,
    positive_int,
)

IntOrTuple = int | Sequence[int]


class _ConvBase(Layer):
    """What convolution and transposed convolution layers share: validation, init, backward."""

    spatial_dims: ClassVar[int] = 0  # set by the 1D/2D/3D classes
    _backward_op: ClassVar[Any]

    @property
    def ndim(self) -> int:
        """The number of spatial dims (``spatial_dims``; the name PyTorch's ``_ConvNd`` uses)."""
        return self.spatial_dims

    def _setup(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype):
        """Validate and store the arguments both layer kinds take; return the name for errors."""
        cls = type(self).__name__
        if self.spatial_dims not in (1, 2, 3):
            raise TypeError(f"{cls} has no number of spatial dims: use the 1D, 2D or 3D class.")
        where = f"{cls}(in_channels={in_channels!r})"
        self.in_channels = positive_int(where, "in_channels", in_channels)
        self.out_channels = positive_int(where, "out_channels", out_channels)
        self.kernel_size = int_tuple(where, "kernel_size", kernel_size, self.spatial_dims, 1)
        self.stride = int_tuple(where, "stride", stride, self.spatial_dims, 1)
        self.dilation = int_tuple(where, "dilation", dilation, self.spatial_dims, 1)
        self.groups = positive_int(where, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{where}: groups must divide in_channels and out_channels. Received: "
                f"groups={groups}, in_channels={in_channels}, out_channels={out_channels}."
            )
        flag(where, "bias", bias)
        self.dtype = float_dtype(where, dtype)
        return where

    def _init_params(self, where: str, shape, fan_in: int, bias: bool, rng: RngLike) -> None:
        """PyTorch's default init: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        try:
            rng = as_rng(rng)
        except TypeError as err:
            raise TypeError(f"{where}: {err}") from None
        self.weight = Parameter(torch_default(shape, fan_in, rng, self.dtype), "weight")
        self.bias = (
            Parameter(torch_default((self.out_channels,), fan_in, rng, self.dtype), "bias")
            if bias
            else None
        )

    def _check_input(self, x: Any) -> np.ndarray:
        x = check_input(self, x, self.spatial_dims, self.in_channels)
        check_weight_dtype(self, x, self.weight.dtype)
        return x

    def _run(self, op: Any, x: np.ndarray, *hyper: Any) -> tuple[np.ndarray, Any]:
        """Run the forward op; its errors (an input too small for the kernel) get our name."""
        b = self.bias.data if self.bias is not None else None
        try:
            return op(x, self.weight.data, b, *hyper)
        except ValueError as err:
            msg = str(err).removeprefix("conv: ").removeprefix("conv_transpose: ")
            raise ValueError(f"{self.label()}: {msg}") from None

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray | None:
        """``dy (N, C_out, *out)`` -> ``dx (N, C_in, *in)``; adds into weight.grad / bias.grad."""
        if dy.dtype != self.weight.dtype:
            raise TypeError(
                f"{self.label()}: dy dtype {dy.dtype} does not match the weight dtype "
                f"{self.weight.dtype}. Pass dy.astype(np.{self.weight.dtype})."
            )
        dx, dw, db = type(self)._backward_op(dy, cache, input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx


@register_layer
class ConvND(_ConvBase):
    """Convolution over ``spatial_dims`` spatial dims (cross-correlation, as PyTorch's ``Conv*d``).

    x: (N, in_channels, *spatial) -> y: (N, out_channels, *out);
    weight: (out_channels, in_channels/groups, *kernel_size), bias: (out_channels,).
    ``padding``: an int, a tuple of ints, a tuple of ``(lo, hi)`` pairs, ``"valid"`` or
    ``"same"`` (``out = ceil(in / stride)``, as TensorFlow; with stride 1 as PyTorch).
    ``algorithm``: ``"auto"`` (``deltanet.fast.plan`` picks by shape), ``"gemm"``,
    ``"winograd"`` (2-D 3x3, stride 1, dilation 1) or ``"direct"`` (stride 1, one group; numba).

    Raises ValueError (or TypeError) naming the argument for sizes, strides, paddings or dilations
    out of range, ``groups`` that does not divide both channel counts, or an unknown ``algorithm``.
    """

    _backward_op = staticmethod(conv_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: int | str | Sequence = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rng: RngLike = None,
        dtype: Any = np.float32,
        algorithm: str = "auto",
    ) -> None:
        super().__init__()
        where = self._setup(
            in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype
        )
        self.padding = conv_padding(where, padding, self.kernel_size, self.stride, self.dilation)
        self.algorithm = self._check_algorithm(where, algorithm)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self._init_params(where, shape, fan_in, bias, rng)

    def _check_algorithm(self, where: str, algorithm: Any) -> str:
        """``algorithm``: "auto" (the plan picks by shape), "gemm", "winograd" (2-D 3x3, stride
        1, dilation 1) or "direct" (stride 1, one group); refused where it cannot run."""
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise ValueError(
                f"{where}: algorithm must be one of {', '.join(map(repr, ALGORITHMS))}. "
                f"Received: {algorithm!r}."
            )
        if algorithm == "winograd" and (
            self.kernel_size != (3, 3) or self.stride != (1, 1) or self.dilation != (1, 1)
        ):
            raise ValueError(
                f"{where}: algorithm='winograd' runs 2-D 3x3 convolutions with stride 1 and "
                f"dilation 1. Received: kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}. Use algorithm='auto' or 'gemm'."
            )
        if algorithm == "direct" and (any(s != 1 for s in self.stride) or self.groups != 1):
            raise ValueError(
                f"{where}: algorithm='direct' runs stride-1 convolutions with one group. "
                f"Received: stride={self.stride}, groups={self.groups}. Use algorithm='auto' "
                "or 'gemm'."
            )
        return algorithm

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """``y = x ⋆ w + b``: (N, in_channels, *spatial) -> (N, out_channels, *out)."""
        hyper = (self.stride, self.padding, self.dilation, self.groups)
        if self.algorithm == "auto":
            return self._run(conv_forward, x, *hyper)
        return self._run(functools.partial(conv_forward, algorithm=self.algorithm), x, *hyper)

    def get_config(self) -> dict[str, Any]:
        algorithm = {} if self.algorithm == "auto" else {"algorithm": self.algorithm}
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "bias": self.bias is not None,
            "dtype": self.dtype.name,
            **algorithm,
        }


@register_layer
class ConvTransposeND(_ConvBase):
    """Transposed convolution over ``spatial_dims`` spatial dims (PyTorch's ``ConvTranspose*d``).

    x: (N, in_channels, *in) -> y: (N, out_channels, *out),
    ``out = (in - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1``;
    weight: (in_channels, out_channels/groups, *kernel_size), bias: (out_channels,).

    Raises ValueError (or TypeError) naming the argument for sizes out of range, ``groups`` that
    does not divide both channel counts, or an ``output_padding`` not smaller than the stride or the
    dilation.
    """

    _backward_op = staticmethod(conv_transpose_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: IntOrTuple = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrTuple = 1,
        *,
        rng: RngLike = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        where = self._setup(
            in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype
        )
        if isinstance(padding, str):
            raise ValueError(
                f"{where}: padding must be an int or a tuple of {self.spatial_dims} ints "
                f"('valid' and 'same' are for convolution). Received: {padding!r}."
            )
        self.padding = int_tuple(where, "padding", padding, self.spatial_dims, 0)
        self.output_padding = int_tuple(
            where, "output_padding", output_padding, self.spatial_dims, 0
        )
        if any(
            op >= s and op >= d for op, s, d in zip(self.output_padding, self.stride, self.dilation)
        ):
            raise ValueError(
                f"{where}: output_padding must be smaller than stride or dilation. Received: "
                f"output_padding={self.output_padding}, stride={self.stride}, "
                f"dilation={self.dilation}."
            )
        # PyTorch computes fan_in from weight.size(1): out_channels/groups * prod(kernel_size)
        fan_in = self.out_channels // self.groups * math.prod(self.kernel_size)
        shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        self._init_params(where, shape, fan_in, bias, rng)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """The adjoint of convolution: (N, in_channels, *in) -> (N, out_channels, *out)."""
        hyper = (self.stride, self.padding, self.output_padding, self.dilation, self.groups)
        return self._run(conv_transpose_forward, x, *hyper)

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "groups": self.groups,
            "bias": self.bias is not None,
            "dilation": self.dilation,
            "dtype": self.dtype.name,
        }


@register_layer
class Conv1D(ConvND):
    """1D convolution: x (N, C, L)."""

    spatial_dims = 1


@register_layer
class Conv2D(ConvND):
    """2D convolution: x (N, C, H, W)."""

    spatial_dims = 2


@register_layer
class Conv3D(ConvND):
    """3D convolution: x (N, C, D, H, W)."""

    spatial_dims = 3


@register_layer
class ConvTranspose1D(ConvTransposeND):
    """1D transposed convolution: x (N, C, L)."""

    spatial_dims = 1


@register_layer
class ConvTranspose2D(ConvTransposeND):
    """2D transposed convolution: x (N, C, H, W)."""

    spatial_dims = 2


@register_layer
class ConvTranspose3D(ConvTransposeND):
    """3D transposed convolution: x (N, C, D, H, W)."""

    spatial_dims = 3
