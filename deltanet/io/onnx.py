"""ONNX export: a deltanet model as an opset-17 graph with a dynamic batch axis, float32.

``export_onnx(model, path, input_shape)`` walks the layer tree and asks each layer's
**exporter** for its ONNX nodes. An exporter is registered per layer class (a subclass inherits
its parent's unless it registers its own) and has the signature::

    @onnx_exporter(MyLayer)
    def export_my_layer(layer: MyLayer, graph: Graph, site: Site) -> str:
        # append the nodes that compute ``layer(site.x)`` and return the output's name
        return graph.node("Relu", [site.x], site.name)

``site`` says where the layer sits: ``site.x`` (the input's name), ``site.shape`` (its shape, a
batch of 1), ``site.out_shape``, ``site.prefix`` (the layer's ``state_dict`` prefix, ``"3."``:
weights go in as ``graph.const(site.prefix + "weight", w)``, so initializers carry the
``state_dict`` names) and ``site.name`` (a node name, ``3_Conv2D``). A block exports its
sub-layers with ``graph.add(child, site.child(name), x, shape) -> (output, output_shape)``.
``deltanet.io.onnx_layers`` registers the built-in layers and containers; the binary layers'
exporters live in ``deltanet.binary.onnx_exporters``.

Spatial sizes are fixed by ``input_shape`` (per example, no batch axis), so "same" padding and
``ceil_mode`` resolve to explicit pads as deltanet computes them. Layers are exported in
inference mode (Dropout is an Identity, BatchNorm uses its running statistics); the model's own
modes are restored afterwards. ``onnx`` is an optional extra, imported only when export runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from deltanet.io.safetensors import atomic_write
from deltanet.layers.base import Layer, mode
from deltanet.ops.window import resolve_padding

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17: the widest range of runtimes reads it

Exporter = Callable[[Any, "Graph", "Site"], str]
F = TypeVar("F", bound=Exporter)
_EXPORTERS: dict[type, Exporter] = {}


def onnx_exporter(*classes: type[Layer]) -> Callable[[F], F]:
    """Decorator: ``fn(layer, graph, site) -> output name`` exports these layer classes.

    Raises TypeError when given something other than ``Layer`` subclasses.
    """
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise TypeError(f"onnx_exporter: expected Layer subclasses. Received: {cls!r}.")

    def register(fn: F) -> F:
        for cls in classes:
            _EXPORTERS[cls] = fn
        return fn

    return register


def exporter_for(layer: Layer) -> Exporter | None:
    """The exporter registered for ``type(layer)`` or the nearest class along its MRO."""
    return next((_EXPORTERS[c] for c in type(layer).__mro__ if c in _EXPORTERS), None)


def export_onnx(model: Layer, path: str | os.PathLike, input_shape: Sequence[int]) -> None:
    """Write ``model`` as an ONNX file at ``path``; inputs ``(batch, *input_shape)``, float32.

    ``input_shape`` is the shape of one example without the batch axis, e.g. ``(1, 28, 28)``.
    Raises TypeError naming the first layer that has no exporter or no ONNX equivalent.
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as err:
        msg = 'export_onnx needs the onnx package: pip install "deltanet[onnx]".'
        raise ImportError(msg) from err

    if not isinstance(model, Layer):
        raise TypeError(
            f"export_onnx: model must be a deltanet Layer. Received: {type(model).__name__}."
        )
    shape = _check_shape(input_shape)
    graph = Graph()
    with mode(model, training=False):  # dropout off, running statistics, while tracing shapes
        try:
            out, out_shape = graph.add(model, "", "input", (1, *shape))
        except ValueError as err:  # a layer's message shows the batch of 1 the trace adds
            raise ValueError(
                f"export_onnx: tracing input_shape {shape} (one example; traced as a batch of "
                f"one, {(1, *shape)}) failed: {err}"
            ) from err
    dims = lambda s: ["batch", *s[1:]]  # noqa: E731 - the batch axis stays symbolic
    graph.node("Identity", [out], "output")
    proto = helper.make_graph(
        graph.nodes,
        type(model).__name__,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims((1, *shape)))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims(out_shape))],
        initializer=graph.initializers,
    )
    onnx_model = helper.make_model(
        proto,
        producer_name="deltanet",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    atomic_write(path, lambda f: f.write(onnx_model.SerializeToString()))


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    ok = isinstance(input_shape, Sequence) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in input_shape
    )
    if not ok or not input_shape:
        raise ValueError(
            "export_onnx: input_shape must be a non-empty tuple of positive ints, one example "
            f"without the batch axis, e.g. (1, 28, 28). Received: {input_shape!r}."
        )
    return tuple(int(s) for s in input_shape)


@dataclass(frozen=True)
class Site:
    """Where a layer sits in the graph: its input ``x`` of ``shape``, its names."""

    layer: Layer
    prefix: str  # the layer's state_dict prefix: "" at the top, "3.", "block.0."
    x: str
    shape: tuple[int, ...]

    @property
    def name(self) -> str:
        """The node name: the prefix with underscores, then the class (``block_0_Conv2D``)."""
        return f"{self.prefix.replace('.', '_')}{type(self.layer).__name__}"

    @cached_property
    def out_shape(self) -> tuple[int, ...]:
        """The layer's output shape for ``shape`` (a forward pass on zeros, eval mode)."""
        return tuple(self.layer.output_shape(self.shape))

    def child(self, name: str) -> str:
        """The prefix of the sub-layer registered as ``name``."""
        return f"{self.prefix}{name}."


class Graph:
    """The nodes and initializers being built; ``add`` appends one layer's nodes."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self.shapes: dict[str, tuple[int, ...]] = {}  # output name -> shape (batch of 1)

    def add(self, layer: Layer, prefix: str, x: str, shape: tuple) -> tuple[str, tuple]:
        """Append ``layer`` (state under ``prefix``) applied to ``x``: ``(output, its shape)``."""
        exporter = exporter_for(layer)
        if exporter is None:
            cls = type(layer).__name__
            raise TypeError(
                f"export_onnx: no ONNX exporter for {cls} (at {prefix.rstrip('.') or 'the top'}); "
                f"register one with @deltanet.io.onnx.onnx_exporter({cls}): a function "
                "(layer, graph, site) -> output name (see deltanet.io.onnx)."
            )
        site = Site(layer, prefix, x, tuple(shape))
        self.shapes.setdefault(x, site.shape)
        if next(layer.children(), None) is None:
            site.out_shape  # noqa: B018 - a leaf checks its input shape first, naming itself
        out = exporter(layer, self, site)
        out_shape = self.shapes.get(out) or site.out_shape
        self.shapes[out] = out_shape
        return out, out_shape

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        """An initializer ``name`` holding ``value`` (float32 unless ``dtype``)."""
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        """One node ``op(inputs)`` whose single output (and the node) is called ``name``."""
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


# --- helpers for exporters of dense and convolution layers (the binary layers reuse them) ---


def gemm(graph: Graph, layer: Any, site: Site, x: str, weight=None, name=None) -> str:
    """``x Wᵀ + b`` as Gemm; ``weight`` replaces the layer's (quantized, unpacked)."""
    weight = layer.weight.data if weight is None else weight
    inputs = [x, graph.const(site.prefix + "weight", weight)]
    if getattr(layer, "bias", None) is not None:
        inputs.append(graph.const(site.prefix + "bias", layer.bias.data))
    return graph.node("Gemm", inputs, name or site.name, transB=1)


def conv(
    graph: Graph, layer: Any, site: Site, x: str, weight=None, name=None, transpose=False
) -> str:
    """Conv (ConvTranspose with ``transpose``) with explicit pads; ``weight`` as for gemm."""
    weight = layer.weight.data if weight is None else weight
    inputs = [x, graph.const(site.prefix + "weight", weight)]
    if getattr(layer, "bias", None) is not None:
        inputs.append(graph.const(site.prefix + "bias", layer.bias.data))
    attrs: dict[str, Any] = {
        "kernel_shape": list(layer.kernel_size),
        "strides": list(layer.stride),
        "dilations": list(layer.dilation),
        "group": layer.groups,
    }
    if transpose:
        attrs["pads"] = list(layer.padding) * 2
        attrs["output_padding"] = list(layer.output_padding)
        return graph.node("ConvTranspose", inputs, name or site.name, **attrs)
    pairs = resolve_padding(
        layer.padding, site.shape[2:], layer.kernel_size, layer.stride, layer.dilation
    )
    attrs["pads"] = [lo for lo, _ in pairs] + [hi for _, hi in pairs]
    return graph.node("Conv", inputs, name or site.name, **attrs)
