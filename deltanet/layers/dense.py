"""Dense (fully connected) layer: ``y = x Wᵀ + b``, PyTorch's ``Linear`` on NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.init import RngLike, as_rng, torch_default
from deltanet.layers.base import Layer, Parameter, check_input
from deltanet.ops.dense import dense_backward, dense_forward


class Dense(Layer):
    """Fully connected layer: x (N, in_features) -> y (N, out_features).

    ``weight`` is (out_features, in_features) and ``bias`` (out_features,) or None, both drawn
    as a fresh ``torch.nn.Linear`` draws them: U(-1/sqrt(in_features), 1/sqrt(in_features)).
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
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Dense: {arg} must be a positive int. Received: {value!r}.")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Dense: bias must be a bool. Received: {bias!r}.")
        dtype = _float_dtype("Dense", dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = as_rng(rng)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(torch_default(shape, self.in_features, rng, dtype), "weight")
        self.bias = (
            Parameter(torch_default((self.out_features,), self.in_features, rng, dtype), "bias")
            if bias
            else None
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_features) -> y: (N, out_features), same dtype as the weight."""
        x = check_input(self, x, 0, self.in_features)
        if x.dtype != self.weight.dtype:
            raise TypeError(
                f"{self.label()}: input dtype {x.dtype} does not match the weight dtype "
                f"{self.weight.dtype}. Cast the input (x.astype(np.{self.weight.dtype})) or "
                f"build the layer with dtype={str(x.dtype)!r}."
            )
        b = None if self.bias is None else self.bias.data
        y, self._cache = dense_forward(x, self.weight.data, b)
        return y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dy: (N, out_features) -> dx: (N, in_features); adds into weight.grad and bias.grad.

        ``input_grad=False`` skips δx (returns None): a network's first layer needs none.
        """
        cache = self._get_cache()
        n = cache[0].shape[0]
        if not isinstance(dy, np.ndarray) or dy.shape != (n, self.out_features):
            received = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(
                f"{self.label()}: expected dy of shape ({n}, {self.out_features}) (the output's "
                f"shape). Received: {received}."
            )
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


def _float_dtype(cls: str, dtype: Any) -> np.dtype:
    """``dtype`` as a floating-point ``np.dtype``; a TypeError naming ``cls`` otherwise."""
    try:
        result = None if dtype is None else np.dtype(dtype)  # np.dtype(None) would be float64
    except TypeError:
        result = None
    if result is None or not np.issubdtype(result, np.floating):
        raise TypeError(f"{cls}: dtype must be a floating-point dtype. Received: {dtype!r}.")
    return result
