"""Sequential: layers applied in order; backward runs them in reverse, passing δ down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from deltanet.layers.base import Layer
from deltanet.layers.conv import _ConvBase
from deltanet.layers.dense import Dense


class Sequential(Layer):
    """A chain of layers (nestable). ``backward(dy)`` feeds each layer the δ of the layer above."""

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: every item must be a deltanet Layer. "
                    f"Received at position {i}: {type(layer).__name__}."
                )
        self.layers: list[Layer] = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """δ of the output -> δ of the input; each layer adds into its parameters' ``.grad``.

        ``input_grad=False`` (a training step, whose input is data) returns None and skips the
        work below the first layer that has parameters: its δx and the layers under it, which
        only pass δ down (PyTorch skips it the same way for inputs that need no gradient).
        """
        first = 0
        if not input_grad:
            first = next((i for i, lay in enumerate(self.layers) if lay.parameters()), 0)
        for i in range(len(self.layers) - 1, first - 1, -1):
            layer = self.layers[i]
            if i == first and not input_grad:
                return backward_parameters(layer, dy)
            dy = layer.backward(dy)
        return dy

    def sublayers(self) -> list[Layer]:
        return list(self.layers)

    def append(self, layer: Layer) -> Sequential:
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential.append: expected a Layer. Received: {type(layer).__name__}."
            )
        self.layers.append(layer)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Layer:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    # --- config -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        from deltanet.layers.config import layer_to_dict

        return {"layers": [layer_to_dict(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        from deltanet.layers.config import layer_from_dict

        layers = config.get("layers") if isinstance(config, dict) else None
        if not isinstance(layers, list):
            raise ValueError(
                f"Sequential config needs a list under 'layers'. Received: {config!r}."
            )
        return cls(*(layer_from_dict(item) for item in layers))

    def label(self) -> str:
        return f"Sequential({len(self.layers)} layers)"

    def __repr__(self) -> str:
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    # --- summary ------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...], print_fn=print) -> str:
        """Print each layer's output shape and parameter count, with totals (shapes include N).

        Runs a zero input through the layers in eval mode, so the shapes are the real ones.
        """
        rows = [("Layer", "Output shape", "Params")]
        shape = tuple(input_shape)
        for i, layer in enumerate(self.layers):
            shape = layer.output_shape(shape)
            rows.append((f"{i}: {layer.label()}", str(shape), f"{layer.num_parameters():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        rule = "-" * (sum(widths) + 4)

        def fmt(r: tuple[str, str, str]) -> str:
            return f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"

        total = self.num_parameters()
        trainable_bytes = sum(p.data.nbytes for p in self.parameters())
        lines = [fmt(rows[0]), rule, *map(fmt, rows[1:]), rule]
        lines.append(f"Total params: {total:,} ({trainable_bytes / 1024:.1f} KiB)")
        lines.append(f"Input shape: {tuple(input_shape)}  Output shape: {shape}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def backward_parameters(layer: Layer, dy: np.ndarray) -> None:
    """Backward of ``layer`` for its parameters' gradients only: δx is skipped where it can be.

    A training step calls this, as its input is data and needs no δ.
    """
    if isinstance(layer, (_ConvBase, Dense, Sequential)):
        layer.backward(dy, input_grad=False)
    else:
        layer.backward(dy)
