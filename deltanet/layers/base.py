"""Parameter and Layer: the state that the pure ops in ``deltanet.ops`` do not keep.

A layer owns its ``Parameter``s (``.data`` and the accumulated ``.grad``) and the cache that its
forward pass leaves for the backward pass. ``layer(x)`` runs forward; ``layer.backward(dy)``
returns ``dx`` and *adds* into each parameter's ``.grad``, so gradients of several backward
passes accumulate until ``zero_grad()``, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class Parameter:
    """A trainable array and its gradient (same shape, same dtype)."""

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"


class Layer:
    """Base class: forward/backward with a cache, parameters, train/eval mode, config."""

    def __init__(self) -> None:
        self.training = True
        self._cache: Any = None

    # --- forward / backward -------------------------------------------------------------
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def backward(self, dy: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define backward()")

    def _get_cache(self) -> Any:
        """The cache of the last forward pass; an error that names the layer when there is none.

        The cache is kept after backward, so one forward may serve several backward passes
        (a Jacobian takes one per output unit).
        """
        if self._cache is None:
            raise ValueError(
                f"{self.label()}: backward() called before forward(). "
                "Run the layer on an input first (layer(x)), then call backward(dy)."
            )
        return self._cache

    # --- parameters ---------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, Parameter)`` of this layer and its sub-layers, in definition order."""
        for attr, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + attr, value
        for sub_prefix, sub in self._children(prefix):
            yield from sub.named_parameters(sub_prefix)

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved with the weights (batch norm's running statistics)."""
        return {}

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        if buffers:
            raise ValueError(f"{self.label()}: has no buffers. Received: {sorted(buffers)}.")

    def _children(self, prefix: str) -> Iterator[tuple[str, Layer]]:
        """``(dotted_prefix, sub_layer)`` for attributes that hold layers or lists of layers."""
        for attr, value in vars(self).items():
            if isinstance(value, Layer):
                yield f"{prefix}{attr}.", value
            elif isinstance(value, list) and value and all(isinstance(v, Layer) for v in value):
                for i, sub in enumerate(value):
                    yield f"{prefix}{i}.", sub

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name, value in self.buffers().items():
            yield prefix + name, value
        for sub_prefix, sub in self._children(prefix):
            yield from sub.named_buffers(sub_prefix)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by dotted name, as PyTorch names them (``0.weight``, ...)."""
        state = {name: p.data for name, p in self.named_parameters()}
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the parameters and buffers; names, shapes and dtypes must agree."""
        expected = self.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{self.label()}: state names disagree. "
                f"Missing: {missing}. Unexpected: {unexpected}."
            )
        for name, value in expected.items():
            new = np.asarray(state[name])
            if new.shape != value.shape:
                raise ValueError(
                    f"{self.label()}: {name} must have shape {value.shape}. Received: {new.shape}."
                )
        for name, p in self.named_parameters():
            p.data[...] = state[name]
        self._load_buffers_tree("", state)

    def _load_buffers_tree(self, prefix: str, state: dict[str, np.ndarray]) -> None:
        own = {name: state[prefix + name] for name in self.buffers()}
        self.load_buffers(own)
        for sub_prefix, sub in self._children(prefix):
            sub._load_buffers_tree(sub_prefix, state)

    def sublayers(self) -> list[Layer]:
        """Direct sub-layers (for containers); empty for a plain layer."""
        return []

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # --- modes --------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Layer:
        self.training = mode
        for sub in self.sublayers():
            sub.train(mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    # --- config -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments that rebuild this layer (weights not included)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input of ``input_shape`` (batch axis included)."""
        x = np.zeros(input_shape, dtype=self._dtype_hint())
        # Every sub-layer in inference mode (a batch norm inside a Sequential would otherwise
        # reject a batch of one), then each layer's own mode back.
        layers, stack = [], [self]
        while stack:
            layer = stack.pop()
            layers.append((layer, layer.training))
            stack.extend(layer.sublayers())
            layer.training = False
        try:
            return self.forward(x).shape
        finally:
            for layer, was in layers:
                layer.training = was
                layer._cache = None

    def _dtype_hint(self) -> np.dtype:
        params = self.parameters()
        return params[0].dtype if params else np.dtype(np.float32)

    def label(self) -> str:
        """How errors name this layer: the class and its first constructor argument."""
        config = self.get_config()
        if not config:
            return f"{type(self).__name__}()"
        key, value = next(iter(config.items()))
        return f"{type(self).__name__}({key}={value!r})"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --- input validation shared by every layer -----------------------------------------------


def check_float_input(layer: Layer, x: Any) -> np.ndarray:
    """``x`` must be a floating-point ``numpy.ndarray``; otherwise a TypeError naming the layer."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{layer.label()}: expected a numpy.ndarray of floats. Received: {type(x).__name__}."
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{layer.label()}: expected a floating-point array (float32 or float64). "
            f"Received dtype: {x.dtype}."
        )
    return x


def check_input(layer: Layer, x: Any, spatial_dims: int, channels: int | None) -> np.ndarray:
    """Validate a channels-first input ``(N, C, *spatial)`` of ``spatial_dims`` spatial axes."""
    x = check_float_input(layer, x)
    names = {0: (), 1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}[spatial_dims]
    c = "C" if channels is None else str(channels)
    expected = "(N, " + ", ".join((c, *names)) + ")"
    if x.ndim != 2 + spatial_dims or (channels is not None and x.shape[1] != channels):
        raise ValueError(
            f"{layer.label()}: expected input of shape {expected}. Received: {x.shape}."
        )
    return x
