"""Containers: layers made of layers. A chain (``Sequential``) and forks (``Residual``, ``Add``,
``Concat``), with ``Identity`` for a branch that passes its input on.

Backpropagation through a chain feeds each layer the δ of the layer above. Through a fork,
where one input ``x`` feeds several branches ``y_k = f_k(x)``, the chain rule sums over every
path from ``x`` to the loss::

    δx = Σ_k (∂y_k/∂x)ᵀ δy_k        (each branch's backward pass, added)

so ``Residual`` (``y = block(x) + x``) gives ``δx = block.backward(δy) + δy``: the identity
path carries the error down unchanged, which is why deep residual networks still train.
``Concat`` joins the branches along the channel axis, so its ``δy`` is split along that axis
into each branch's part before the branch's backward pass. (See docs/backprop.md, "Forks".)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from deltanet.layers.base import Layer, LayerList
from deltanet.layers.registry import layer_from_dict, layer_to_dict, register_layer


def _layers_arg(where: str, layers: tuple[Any, ...]) -> list[Layer]:
    """``f(a, b)`` or ``f([a, b])``; every item a Layer."""
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{where}: every item must be a deltanet Layer. "
                f"Received at position {i}: {type(layer).__name__}."
            )
    return list(layers)


def _configs(layers: list[Layer]) -> list[dict[str, Any]]:
    return [layer_to_dict(layer) for layer in layers]


def _from_configs(where: str, config: Any, key: str) -> list[Layer]:
    items = config.get(key) if isinstance(config, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{where} config needs a list under {key!r}. Received: {config!r}.")
    return [layer_from_dict(item) for item in items]


@register_layer
class Identity(Layer):
    """``y = x``; ``δx = δy``. The shortcut of a residual block whose shapes already agree."""

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        return x, None

    def _backward(self, dy: np.ndarray, cache: None, input_grad: bool) -> np.ndarray:
        return dy


@register_layer
class Sequential(LayerList):
    """A chain of layers (nestable), named ``0, 1, ...``; backward feeds each the δ above it.

    A ``LayerList`` (``append``, ``len``, iteration, indexing) with a forward and a backward.

    Raises TypeError when an item is not a deltanet ``Layer``. An empty chain is the identity.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__(_layers_arg("Sequential", layers))

    def _check_input(self, x: Any) -> Any:
        return x  # the first layer checks it, with its own name in the message

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        for layer in self.children():
            x = layer(x)
        return x, None

    def _backward(self, dy: np.ndarray, cache: None, input_grad: bool) -> np.ndarray | None:
        """δ of the output -> δ of the input, each layer adding into its parameters' ``.grad``.

        ``input_grad=False`` (a training step, whose input is data) stops at the lowest layer
        that has parameters and asks it for no δx: the layers under it only pass δ down.
        """
        layers = self.layers
        first = 0
        if not input_grad:
            first = next((i for i, lay in enumerate(layers) if lay.has_parameters()), 0)
        grad: np.ndarray | None = dy
        for i in range(len(layers) - 1, first - 1, -1):
            # An array on every pass: only the last call (i == first) may be asked for no δx,
            # and backward itself rejects anything else, so the cast only informs the checker.
            grad = layers[i].backward(cast(np.ndarray, grad), input_grad=input_grad or i > first)
        return grad

    def __getitem__(self, index: int | slice) -> Layer:  # a slice is a Sequential too
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def get_config(self) -> dict[str, Any]:
        return {"layers": _configs(self.layers)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        return cls(*_from_configs("Sequential", config, "layers"))

    def summary(
        self,
        input_shape: tuple[int, ...],
        print_fn: Callable[[str], Any] | None = print,
        *,
        depth: int = 1,
    ) -> str:
        """Print each layer's output shape and parameter count, with totals (shapes include N).

        Shapes come from ``output_shape`` (a zero input through the layers in eval mode), so
        they are the real ones. ``depth`` > 1 also lists the layers inside nested containers
        (a ``Residual``'s block and shortcut, a ``Sequential`` inside a ``Sequential``), indented,
        down to that many levels. Returns the text; ``print_fn=None`` prints nothing.
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"Sequential.summary: depth must be an int >= 1. Received: {depth!r}.")
        rows = [("Layer", "Output shape", "Params")]
        shape = _summary_rows(self, "", tuple(input_shape), depth, 0, rows)
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


def _summary_rows(
    seq: Layer, prefix: str, shape: tuple[int, ...], depth: int, level: int, rows: list
) -> tuple[int, ...]:
    """Append one row per child of a chain (``seq``), each fed the previous child's output
    shape, and recurse ``depth - 1`` levels into containers; returns the chain's output shape."""
    for key, layer in seq.named_children():
        name = f"{prefix}{key}"
        out = _summary_row(rows, level, name, layer, shape)
        if depth > 1 and isinstance(layer, Sequential):
            _summary_rows(layer, f"{name}.", shape, depth - 1, level + 1, rows)
        elif depth > 1 and isinstance(layer, _Fork):  # every branch takes the fork's input
            for branch_key, branch in layer.named_children():
                branch_name = f"{name}.{branch_key}"
                if isinstance(branch, Sequential):
                    _summary_rows(branch, f"{branch_name}.", shape, depth - 1, level + 1, rows)
                else:
                    _summary_row(rows, level + 1, branch_name, branch, shape)
        shape = out
    return shape


def _summary_row(
    rows: list, level: int, name: str, layer: Layer, shape: tuple[int, ...]
) -> tuple[int, ...]:
    """Append ``layer``'s row, indented ``level`` steps, for an input of ``shape``; returns
    its output shape."""
    out = layer.output_shape(shape)
    rows.append((f"{'  ' * level}{name}: {layer.label()}", str(out), f"{layer.num_parameters():,}"))
    return out


class _Fork(Layer):
    """One input into several branches; their δx are added (the fork rule)."""

    def branches(self) -> list[Layer]:
        return list(self.children())

    def __len__(self) -> int:
        return len(self.branches())

    def __getitem__(self, index: int) -> Layer:
        return self.branches()[index]

    def _check_input(self, x: Any) -> Any:
        return x  # each branch checks it

    def _outputs(self, x: np.ndarray) -> list[np.ndarray]:
        ys = [branch(x) for branch in self.branches()]
        return ys

    def _sum_dx(self, dxs: list[np.ndarray | None]) -> np.ndarray | None:
        """Σ of the branches' δx (None where a branch was asked for none)."""
        total = None
        for dx in dxs:
            if dx is not None:
                total = dx.copy() if total is None else np.add(total, dx, out=total)
        return total


@register_layer
class Add(_Fork):
    """``y = Σ_k branch_k(x)`` (branches named ``0, 1, ...``); ``δx = Σ_k branch_k.backward(δy)``.

    Every branch must give the same output shape.

    Raises TypeError for a branch that is not a deltanet ``Layer``, ValueError for fewer than 2
    branches or (when running) outputs of different shapes.
    """

    def __init__(self, *branches: Layer) -> None:
        super().__init__()
        layers = _layers_arg("Add", branches)
        if len(layers) < 2:
            raise ValueError(f"Add: expected at least 2 branches. Received: {len(layers)}.")
        for i, layer in enumerate(layers):
            self.add_layer(str(i), layer)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        ys = self._outputs(x)
        shapes = [y.shape for y in ys]
        if len(set(shapes)) != 1:
            raise ValueError(
                f"{self.label()}: every branch must give the same output shape. "
                f"Received: {shapes} for input {x.shape}."
            )
        y = ys[0] + ys[1]
        for other in ys[2:]:
            y += other
        return y, None

    def _backward(self, dy: np.ndarray, cache: None, input_grad: bool) -> np.ndarray | None:
        return self._sum_dx([b.backward(dy, input_grad=input_grad) for b in self.branches()])

    def get_config(self) -> dict[str, Any]:
        return {"branches": _configs(self.branches())}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Add:
        return cls(*_from_configs("Add", config, "branches"))

    def label(self) -> str:
        return f"Add({len(self.branches())} branches)"


@register_layer
class Residual(_Fork):
    """``y = block(x) + shortcut(x)``, the identity when ``shortcut`` is None (He et al., 2016).

    ``δx = block.backward(δy) + shortcut.backward(δy)`` (``+ δy`` for the identity): the
    shortcut's δ reaches the input whatever the block does to its own.

    Raises TypeError when ``block`` or ``shortcut`` is not a deltanet ``Layer``, and (when running)
    ValueError when their outputs differ in shape, naming both.
    """

    def __init__(self, block: Layer, shortcut: Layer | None = None) -> None:
        super().__init__()
        if not isinstance(block, Layer):
            raise TypeError(f"Residual: block must be a Layer. Received: {type(block).__name__}.")
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise TypeError(
                f"Residual: shortcut must be a Layer or None. Received: {type(shortcut).__name__}."
            )
        self.block = block
        self.shortcut = shortcut

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        y = self.block(x)
        s = x if self.shortcut is None else self.shortcut(x)
        if y.shape != s.shape:
            raise ValueError(
                f"{self.label()}: the block's output {y.shape} and the shortcut's {s.shape} must "
                f"have the same shape (input {x.shape}). Give a shortcut that matches them, "
                "e.g. a 1x1 Conv2D with the block's stride."
            )
        return y + s, None

    def _backward(self, dy: np.ndarray, cache: None, input_grad: bool) -> np.ndarray | None:
        dxs = [self.block.backward(dy, input_grad=input_grad)]
        if self.shortcut is not None:
            dxs.append(self.shortcut.backward(dy, input_grad=input_grad))
        elif input_grad:
            dxs.append(dy)
        return self._sum_dx(dxs)

    def get_config(self) -> dict[str, Any]:
        shortcut = None if self.shortcut is None else layer_to_dict(self.shortcut)
        return {"block": layer_to_dict(self.block), "shortcut": shortcut}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Residual:
        if not isinstance(config, dict) or "block" not in config:
            raise ValueError(f"Residual config needs a 'block'. Received: {config!r}.")
        shortcut = config.get("shortcut")
        return cls(
            layer_from_dict(config["block"]),
            None if shortcut is None else layer_from_dict(shortcut),
        )

    def label(self) -> str:
        kind = "identity" if self.shortcut is None else self.shortcut.label()
        return f"Residual(block={self.block.label()}, shortcut={kind})"


@register_layer
class Concat(_Fork):
    """``y = concat([branch_k(x)], axis)`` (the channel axis 1 by default; Inception, DenseNet).

    ``δy`` is split along ``axis`` into each branch's part; ``δx = Σ_k branch_k.backward(δy_k)``.
    The branches' outputs must agree on every other axis.

    Raises TypeError for a branch that is not a deltanet ``Layer``, ValueError for fewer than 2
    branches, an ``axis`` below 1 (axis 0 is the batch), or (when running) outputs that disagree off
    ``axis``.
    """

    def __init__(self, *branches: Layer, axis: int = 1) -> None:
        super().__init__()
        layers = _layers_arg("Concat", branches)
        if len(layers) < 2:
            raise ValueError(f"Concat: expected at least 2 branches. Received: {len(layers)}.")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis < 1:
            raise ValueError(
                f"Concat: axis must be an int >= 1 (axis 0 is the batch). Received: {axis!r}."
            )
        self.axis = int(axis)
        for i, layer in enumerate(layers):
            self.add_layer(str(i), layer)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
        ys = self._outputs(x)
        a = self.axis
        rest = {y.shape[:a] + y.shape[a + 1 :] if y.ndim > a else None for y in ys}
        if None in rest or len(rest) != 1:
            raise ValueError(
                f"{self.label()}: the branches' outputs must agree on every axis but {a}. "
                f"Received: {[y.shape for y in ys]} for input {x.shape}."
            )
        return np.concatenate(ys, axis=a), [y.shape[a] for y in ys]

    def _backward(self, dy: np.ndarray, cache: list[int], input_grad: bool) -> np.ndarray | None:
        parts = np.split(dy, np.cumsum(cache)[:-1], axis=self.axis)
        branches = self.branches()
        return self._sum_dx(
            [
                b.backward(np.ascontiguousarray(p), input_grad=input_grad)
                for b, p in zip(branches, parts)
            ]
        )

    def get_config(self) -> dict[str, Any]:
        return {"branches": _configs(self.branches()), "axis": self.axis}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Concat:
        axis = config.get("axis", 1) if isinstance(config, dict) else 1
        return cls(*_from_configs("Concat", config, "branches"), axis=axis)

    def label(self) -> str:
        return f"Concat({len(self.branches())} branches, axis={self.axis})"
