"""Parameter and Layer: the state that the pure ops in ``deltanet.ops`` do not keep.

A layer owns its ``Parameter``s (``.data`` and the accumulated ``.grad``), its sub-layers and
the cache that its forward pass leaves for the backward pass. ``layer(x)`` runs forward;
``layer.backward(dy)`` returns ``dx`` and *adds* into each parameter's ``.grad``, so gradients
of several backward passes accumulate until ``zero_grad()``, as in PyTorch.

**One layer tree.** Assigning a ``Layer`` (or a list of layers, kept as a ``LayerList``) or a
``Parameter`` to an attribute registers it, in assignment order, as Chainer's ``Link`` and
PyTorch's ``Module`` do. Everything that walks a model (``children``, ``named_layers``,
``named_parameters``, ``named_buffers``, ``state_dict``, ``train``/``eval``, ``output_shape``)
reads these two registries and nothing else, so a custom block is seen exactly like a built-in
container.

**One layer contract.** ``forward(x)`` validates ``x`` (``_check_input``), runs the layer's own
``_forward(x) -> (y, cache)`` and keeps the cache and the output's shape; ``backward(dy, *,
input_grad=True)`` checks that ``dy`` has that shape, then runs ``_backward(dy, cache,
input_grad) -> dx``. ``input_grad=False`` (a network's first layer, whose input is data) lets a
layer skip δx; a layer without parameters then has nothing to do at all.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from deltanet.layers.validate import check_float_input, check_state_shape


class Parameter:
    """A trainable array and its gradient (same shape, same dtype)."""

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data`` (and of ``grad``)."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of ``data`` (and of ``grad``)."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of elements of ``data``."""
        return self.data.size

    def zero_grad(self) -> None:
        """Set ``grad`` to zeros, in place (backward passes add into it)."""
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"


_NO_OUTPUT = None  # the output shape before any forward pass


class Layer:
    """Base class: the layer tree, the forward/backward contract, train/eval mode, config.

    ``layer(x)`` runs ``forward``: TypeError or ValueError (naming the layer and the shape received)
    for an input of the wrong kind, rank or size. ``backward(dy)``: ValueError when no forward pass
    came before it or ``dy`` does not have the output's shape.
    """

    # Class-level defaults, so a subclass that assigns attributes before ``super().__init__()``
    # (or forgets it) still has a consistent layer.
    training: bool = True
    _cache: Any = None
    _y_shape: tuple[int, ...] | None = _NO_OUTPUT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("backward")
        if own is not None and not _accepts_input_grad(own):
            cls.backward = _with_input_grad(own)  # type: ignore[method-assign]

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "_y_shape", _NO_OUTPUT)

    # --- the registries -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        """Register layers, lists of layers and parameters under the attribute's name."""
        d = self.__dict__
        layers, params = d.setdefault("_layers", {}), d.setdefault("_parameters", {})
        if _is_layer_list(value):
            value = LayerList(value)
        # A replaced child keeps its place (dicts keep the first insertion's position), so
        # swapping one layer for another leaves the names and their order as they were.
        if isinstance(value, Layer):
            params.pop(name, None)
            layers[name] = value
        elif isinstance(value, Parameter):
            layers.pop(name, None)
            params[name] = value
        else:
            layers.pop(name, None)
            params.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.get("_layers", {}).pop(name, None)
        self.__dict__.get("_parameters", {}).pop(name, None)
        object.__delattr__(self, name)

    def add_layer(self, name: str, layer: Layer) -> None:
        """Register ``layer`` as a child under ``name`` (containers name children ``0, 1, ...``)."""
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{self.label()}: a child must be a deltanet Layer. "
                f"Received for {name!r}: {type(layer).__name__}."
            )
        if not name or "." in name:
            raise ValueError(
                f"{self.label()}: a child's name must be non-empty, without dots. "
                f"Received: {name!r}."
            )
        self.__dict__.setdefault("_layers", {})[name] = layer

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """``(name, child)`` for each direct sub-layer, in registration order."""
        yield from self.__dict__.get("_layers", {}).items()

    def children(self) -> Iterator[Layer]:
        """Each direct sub-layer, in registration order (``named_children`` without names)."""
        for _, child in self.named_children():
            yield child

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """``(dotted_name, layer)`` for this layer (name ``prefix``) and every layer below it.

        Pre-order (a container before its children); a layer held twice is listed once.
        """
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            yield name, layer
            kids = [(f"{name}.{k}" if name else k, c) for k, c in layer.named_children()]
            stack.extend(reversed(kids))

    def layers_tree(self) -> list[Layer]:
        """This layer and every layer below it, pre-order (``named_layers`` without names)."""
        return [layer for _, layer in self.named_layers()]

    # --- parameters and buffers -----------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, Parameter)`` of this layer and its sub-layers, in definition order.

        A parameter shared by two layers is listed once (so an optimizer steps it once).
        """
        seen: set[int] = set()
        for name, layer in self.named_layers(prefix):
            for attr, p in layer.__dict__.get("_parameters", {}).items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{name}.{attr}" if name else attr), p

    def parameters(self) -> list[Parameter]:
        """Every ``Parameter`` of this layer and its sub-layers, each once, in definition order."""
        return [p for _, p in self.named_parameters()]

    def has_parameters(self) -> bool:
        """Whether this layer or one below it owns a ``Parameter``."""
        if self.__dict__.get("_parameters"):
            return True
        return any(child.has_parameters() for child in self.children())

    def zero_grad(self) -> None:
        """Set the ``grad`` of every parameter of this layer and its sub-layers to zeros."""
        for p in self.parameters():
            p.zero_grad()

    def buffers(self) -> dict[str, np.ndarray]:
        """This layer's own non-trainable state saved with the weights (batch-norm statistics)."""
        return {}

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Set this layer's own buffers from ``buffers`` (names as ``buffers()`` gives them).

        Raises ValueError for names the layer does not have (a layer without buffers takes
        only an empty dict).
        """
        if buffers:
            raise ValueError(f"{self.label()}: has no buffers. Received: {sorted(buffers)}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """``(dotted_name, array)`` of the buffers of this layer and every layer below it."""
        for name, layer in self.named_layers(prefix):
            for attr, value in layer.buffers().items():
                yield (f"{name}.{attr}" if name else attr), value

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by dotted name, as PyTorch names them (``0.weight``, ...)."""
        state = {name: p.data for name, p in self.named_parameters()}
        for name, value in self.named_buffers():
            if name in state:  # two registries may never share a name: that would lose data
                raise ValueError(f"{self.label()}: the name {name!r} is used twice.")
            state[name] = value
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
            check_state_shape(self, name, value, state[name])
        for name, p in self.named_parameters():
            p.data[...] = state[name]
        for name, layer in self.named_layers():
            own = {k: state[f"{name}.{k}" if name else k] for k in layer.buffers()}
            layer.load_buffers(own)

    def num_parameters(self) -> int:
        """The number of trainable numbers: the sizes of all parameters, each counted once."""
        return sum(p.size for p in self.parameters())

    # --- modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Layer:
        """Training mode (``mode=True``) or evaluation mode for this layer and every one below."""
        for layer in self.layers_tree():
            layer.training = bool(mode)
        return self

    def eval(self) -> Layer:
        """Evaluation mode for this layer and every one below (``train(False)``); returns self."""
        return self.train(False)

    # --- forward / backward ---------------------------------------------------------------
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Validate ``x``, run ``_forward`` and keep its cache for ``backward``."""
        x = self._check_input(x)
        y, cache = self._forward(x)
        # never layers or parameters: set past the registries (this runs on every call)
        object.__setattr__(self, "_cache", cache)
        object.__setattr__(self, "_y_shape", y.shape)
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """δ of the output -> δ of the input; adds into each parameter's ``.grad``.

        ``input_grad=False`` returns None and lets the layer skip δx (PyTorch skips it the same
        way for an input that needs no gradient).
        """
        cache = self._get_cache()
        if not isinstance(dy, np.ndarray) or dy.shape != self._y_shape:
            received = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(
                f"{self.label()}: expected dy of shape {self._y_shape} (the output of forward). "
                f"Received: {received}."
            )
        if not input_grad and not self.has_parameters():
            return None  # nothing to accumulate and no δx wanted
        dx = self._backward(dy, cache, input_grad)
        return dx if input_grad else None

    def _check_input(self, x: Any) -> np.ndarray:
        """The input check every forward runs; layers narrow it (rank, channels, dtype)."""
        return check_float_input(self, x)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """``x -> (y, cache)``: the layer's own forward pass, on a validated input."""
        raise NotImplementedError(
            f"{type(self).__name__} must define _forward(x) -> (y, cache) "
            "(or override forward and backward)."
        )

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray | None:
        """``(dy, cache) -> dx``, adding into the parameters' ``.grad``; dx may be None when
        ``input_grad`` is False."""
        raise NotImplementedError(
            f"{type(self).__name__} must define _backward(dy, cache, input_grad) -> dx "
            "(or override forward and backward)."
        )

    def _get_cache(self) -> Any:
        """The cache of the last forward pass; an error that names the layer when there is none.

        The cache is kept after backward, so one forward may serve several backward passes
        (a Jacobian takes one per output unit).
        """
        if self._y_shape is _NO_OUTPUT and self._cache is None:
            raise ValueError(
                f"{self.label()}: backward() called before forward(). "
                "Run the layer on an input first (layer(x)), then call backward(dy)."
            )
        return self._cache

    def clear_cache(self) -> None:
        """Drop the forward caches of this layer and every layer below it (frees memory)."""
        for layer in self.layers_tree():
            object.__setattr__(layer, "_cache", None)
            object.__setattr__(layer, "_y_shape", _NO_OUTPUT)

    # --- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments that rebuild this layer (weights not included)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A new layer built from ``get_config()``'s output (fresh weights): ``cls(**config)``.

        Raises what the constructor raises for arguments it does not accept.
        """
        return cls(**config)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input of ``input_shape`` (batch axis included).

        Runs a zero input in eval mode (a batch norm would otherwise reject a batch of one),
        then restores every layer's mode and drops the caches.
        """
        x = np.zeros(input_shape, dtype=self._dtype_hint())
        try:
            with mode(self, training=False):
                return self.forward(x).shape
        finally:
            self.clear_cache()

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
        kids = list(self.named_children())
        if not kids:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
            return f"{type(self).__name__}({args})"
        lines = [f"  ({k}): " + repr(child).replace("\n", "\n  ") for k, child in kids]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class LayerList(Layer):
    """A list of layers registered as children ``0, 1, ...`` (so named ``attr.0``, ``attr.1``).

    Assigning a plain list of layers to an attribute makes one, as PyTorch's ``ModuleList``.
    It has no forward of its own: the layer that holds it decides how its items are used.
    """

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> LayerList:
        """Add ``layer`` as the next child (named ``len(self)``); returns self.

        Raises TypeError when ``layer`` is not a deltanet ``Layer``.
        """
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{type(self).__name__}.append: expected a deltanet Layer. "
                f"Received: {type(layer).__name__}."
            )
        self.add_layer(str(len(self)), layer)
        return self

    @property
    def layers(self) -> list[Layer]:
        """The layers in order (a new list; ``append`` adds one)."""
        return list(self.children())

    def __len__(self) -> int:
        return len(self.__dict__.get("_layers", {}))

    def __iter__(self) -> Iterator[Layer]:
        return self.children()

    def __getitem__(self, index: int) -> Layer:
        return list(self.children())[index]

    def label(self) -> str:
        return f"{type(self).__name__}({len(self)} layers)"


def _accepts_input_grad(method: Callable[..., Any]) -> bool:
    params = inspect.signature(method).parameters.values()
    return any(p.name == "input_grad" or p.kind is p.VAR_KEYWORD for p in params)


def _with_input_grad(backward: Callable[..., Any]) -> Callable[..., Any]:
    """A layer written before the contract, ``backward(self, dy)``, made to accept
    ``input_grad`` (its δx is computed anyway, and dropped when not wanted)."""

    @functools.wraps(backward)
    def wrapped(self: Layer, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        dx = backward(self, dy)
        return dx if input_grad else None

    return wrapped


def _is_layer_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and isinstance(value[0], Layer)  # most tuples (a cache, a shape) stop here
        and all(isinstance(v, Layer) for v in value)
    )


@contextmanager
def mode(model: Layer, training: bool) -> Iterator[None]:
    """Switch ``model`` to train or eval mode, and back to each layer's own mode afterwards."""
    layers = model.layers_tree()
    saved = [layer.training for layer in layers]
    model.train(training)
    try:
        yield
    finally:
        for layer, was in zip(layers, saved):
            layer.training = was
