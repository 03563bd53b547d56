"""Dense (fully connected) layer: ``y = x Wᵀ + b``, PyTorch's ``Linear`` on NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.init import RngLike, as_rng, torch_default
from deltanet.layers.base import Layer, Parameter
from deltanet.layers.registry import register_layer
from deltanet.layers.validate import (
    check_input,
    check_weight_dtype,
    flag,
    float_dtype,
    positive_int,
)
from deltanet.ops.dense import DenseCache, dense_backward, dense_forward


@register_layer
class Dense(Layer):
    """Fully connected layer: x (N, in_features) -> y (N, out_features).

    ``weight`` is (out_features, in_features) and ``bias`` (out_features,) or None, both drawn
    as a fresh ``torch.nn.Linear`` draws them: U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Raises TypeError or ValueError for sizes that are not positive ints; when running, ValueError
    for an input that is not ``(N, in_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: RngLike = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("Dense", "in_features", in_features)
        self.out_features = positive_int("Dense", "out_features", out_features)
        bias = flag("Dense", "bias", bias)
        dtype = float_dtype("Dense", dtype)
        rng = as_rng(rng)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(torch_default(shape, self.in_features, rng, dtype), "weight")
        self.bias = (
            Parameter(torch_default((self.out_features,), self.in_features, rng, dtype), "bias")
            if bias
            else None
        )

    def _check_input(self, x: Any) -> np.ndarray:
        x = check_input(self, x, 0, self.in_features)
        check_weight_dtype(self, x, self.weight.dtype)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, DenseCache]:
        """x: (N, in_features) -> y: (N, out_features), same dtype as the weight."""
        b = None if self.bias is None else self.bias.data
        return dense_forward(x, self.weight.data, b)

    def _backward(self, dy: np.ndarray, cache: DenseCache, input_grad: bool) -> np.ndarray | None:
        """dy: (N, out_features) -> dx: (N, in_features); adds into weight.grad and bias.grad."""
        dx, dw, db = dense_backward(dy, cache, input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "dtype": self.weight.dtype.name,
        }
