"""Pooling layers: one MaxPoolND and one AvgPoolND; the 1D/2D/3D classes only fix the dims.

They have no parameters: ``backward`` only upsamples the error (``deltanet.ops.pool``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deltanet.fast.pool import (
    avg_pool_backward,
    avg_pool_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
    max_pool_argmax,
    max_pool_backward,
    max_pool_forward,
)
from deltanet.layers.base import Layer
from deltanet.layers.registry import register_layer
from deltanet.layers.validate import check_float_input, check_input, flag, int_tuple

IntOrTuple = int | Sequence[int]


class _PoolND(Layer):
    """What max and mean pooling share: the window hyper-parameters and their validation."""

    fixed_dims: int | None = None  # set by the 1D/2D/3D subclasses

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None,
        padding: IntOrTuple,
        dilation: IntOrTuple,
        ceil_mode: bool,
        spatial_dims: int | None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if self.fixed_dims is not None and spatial_dims not in (None, self.fixed_dims):
            raise ValueError(
                f"{name}: spatial_dims is fixed to {self.fixed_dims}. Received: {spatial_dims!r}."
            )
        nd = self.fixed_dims or spatial_dims
        if nd not in (1, 2, 3):
            raise ValueError(f"{name}: spatial_dims must be 1, 2 or 3. Received: {spatial_dims!r}.")
        self.spatial_dims = nd
        self.kernel_size = self._tuple(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else self._tuple(stride, "stride", 1)
        self.padding = self._tuple(padding, "padding", 0)
        self.dilation = self._tuple(dilation, "dilation", 1)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name}: padding must be at most half of kernel_size. "
                f"Received: padding={self.padding}, kernel_size={self.kernel_size}."
            )
        self.ceil_mode = flag(name, "ceil_mode", ceil_mode)

    def _tuple(self, value: IntOrTuple, what: str, minimum: int) -> tuple[int, ...]:
        return int_tuple(type(self).__name__, what, value, self.spatial_dims, minimum)

    def _check_input(self, x: Any) -> np.ndarray:
        """A float ``(N, C, *spatial)`` input that the (dilated) kernel fits into once padded."""
        x = check_input(self, x, self.spatial_dims, None)
        spatial = x.shape[2:]
        span = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        padded = tuple(n + 2 * p for n, p in zip(spatial, self.padding))
        if any(s > n for s, n in zip(span, padded)):
            raise ValueError(
                f"{self.label()}: kernel_size={self.kernel_size} (dilation={self.dilation}) is "
                f"larger than the padded input {padded}. Received input of size {spatial} "
                f"with padding={self.padding}."
            )
        return x

    def _config(self, **extra: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            **extra,
        }
        if self.fixed_dims is None:
            config["spatial_dims"] = self.spatial_dims
        return config


@register_layer
class MaxPoolND(_PoolND):
    """Max pooling over ``spatial_dims`` axes: ``(N, C, *in) -> (N, C, *out)``.

    Backward routes each δ whole to its window's maximum (ties: the first, as PyTorch).

    Raises TypeError or ValueError, naming the argument, for sizes, strides or dilations that are
    not positive ints and a ``padding`` above half the kernel; when running, ValueError for an input
    with another number of spatial axes or one too small for a window.
    """

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
        *,
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, spatial_dims)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        # in eval mode the argmax is left for a backward pass to find, if one comes
        return max_pool_forward(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            argmax=self.training,
        )  # fmt: skip

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        if cache.argmax is None:  # eval mode: find the argmax once, later passes reuse it
            cache = self._cache = max_pool_argmax(cache)
        (dx,) = max_pool_backward(dy, cache)
        return dx

    def get_config(self) -> dict[str, Any]:
        return self._config(dilation=list(self.dilation), ceil_mode=self.ceil_mode)


@register_layer
class AvgPoolND(_PoolND):
    """Mean pooling over ``spatial_dims`` axes: ``(N, C, *in) -> (N, C, *out)``.

    Backward spreads each δ evenly over its window (``δ / |window|``, PyTorch's divisor).

    Raises TypeError or ValueError, naming the argument, for sizes or strides that are not positive
    ints and a ``padding`` above half the kernel; when running, ValueError for an input with another
    number of spatial axes or one too small for a window.
    """

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        *,
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, spatial_dims)
        self.count_include_pad = flag(type(self).__name__, "count_include_pad", count_include_pad)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return avg_pool_forward(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad
        )

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        (dx,) = avg_pool_backward(dy, cache)
        return dx

    def get_config(self) -> dict[str, Any]:
        return self._config(ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)


@register_layer
class MaxPool1D(MaxPoolND):
    """Max pooling of ``(N, C, L)``."""

    fixed_dims = 1


@register_layer
class MaxPool2D(MaxPoolND):
    """Max pooling of ``(N, C, H, W)``."""

    fixed_dims = 2


@register_layer
class MaxPool3D(MaxPoolND):
    """Max pooling of ``(N, C, D, H, W)``."""

    fixed_dims = 3


@register_layer
class AvgPool1D(AvgPoolND):
    """Mean pooling of ``(N, C, L)``."""

    fixed_dims = 1


@register_layer
class AvgPool2D(AvgPoolND):
    """Mean pooling of ``(N, C, H, W)``."""

    fixed_dims = 2


@register_layer
class AvgPool3D(AvgPoolND):
    """Mean pooling of ``(N, C, D, H, W)``."""

    fixed_dims = 3


class _GlobalPool(Layer):
    """Pooling over every spatial axis: ``(N, C, *spatial) -> (N, C, 1, ..., 1)``."""

    _ops: tuple = ()

    def _check_input(self, x: Any) -> np.ndarray:
        x = check_float_input(self, x)
        if x.ndim < 3:
            raise ValueError(
                f"{self.label()}: expected input of shape (N, C, *spatial) with at least one "
                f"spatial axis. Received: {x.shape}."
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._ops[0](x)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        (dx,) = self._ops[1](dy, cache)
        return dx


@register_layer
class GlobalAvgPool(_GlobalPool):
    """Mean over all spatial axes (PyTorch's ``AdaptiveAvgPool(1)``, ONNX GlobalAveragePool)."""

    _ops = (global_avg_pool_forward, global_avg_pool_backward)


@register_layer
class GlobalMaxPool(_GlobalPool):
    """Max over all spatial axes (PyTorch's ``AdaptiveMaxPool(1)``, ONNX GlobalMaxPool)."""

    _ops = (global_max_pool_forward, global_max_pool_backward)
