"""ONNX export: a deltanet model as an opset-17 graph with a dynamic batch axis, float32.

``export_onnx(model, path, input_shape)`` walks the model (``Sequential`` containers nested in
any depth) and writes one ONNX node per layer, named after the layer's position and class
(``3_Conv2D``); the weights become initializers under their ``state_dict`` names (``3.weight``).
Spatial sizes are fixed by ``input_shape`` (per example, no batch axis), so "same" padding and
``ceil_mode`` resolve to explicit pads exactly as deltanet computes them. Layers are exported in
inference mode: Dropout is an Identity, BatchNorm uses its running statistics. Binary and
k-bit layers (``QActivation``, ``QDense``, ``QConv*``, the packed layers of ``deltanet.binary``)
become their float equivalents: the sign as ``Where(x >= 0, 1, -1)``, then Conv or Gemm.

``onnx`` is an optional extra: it is imported only when this module's functions run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deltanet import layers as dl
from deltanet.layers.base import Layer
from deltanet.ops.window import resolve_padding

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17: the widest range of runtimes reads it

# Layers whose ONNX node takes only the input.
_UNARY = {dl.ReLU: "Relu", dl.Sigmoid: "Sigmoid", dl.Tanh: "Tanh", dl.Dropout: "Identity"}


def export_onnx(model: Layer, path: str | os.PathLike, input_shape: Sequence[int]) -> None:
    """Write ``model`` as an ONNX file at ``path``; inputs ``(batch, *input_shape)``, float32.

    ``input_shape`` is the shape of one example without the batch axis, e.g. ``(1, 28, 28)``.
    Raises TypeError naming the first layer that has no ONNX equivalent.
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
    graph = _Graph()
    was_training = _training_flags(model)
    model.eval()  # inference behaviour (dropout off, running statistics) while tracing shapes
    try:
        out, out_shape = graph.add(model, "", "input", (1, *shape))
    finally:
        for layer, flag in was_training:
            layer.training = flag
    dims = lambda s: ["batch", *s[1:]]  # noqa: E731 - the batch axis stays symbolic
    graph.nodes.append(helper.make_node("Identity", [out], ["output"], name="output"))
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
    from deltanet.safetensors_format import atomic_write

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


def _training_flags(model: Layer) -> list[tuple[Layer, bool]]:
    stack, out = [model], []
    while stack:
        layer = stack.pop()
        out.append((layer, layer.training))
        stack.extend(layer.sublayers())
    return out


class _Graph:
    """Nodes and initializers being built; ``add`` appends one layer and returns its output."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, value: np.ndarray, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def add(self, layer: Layer, prefix: str, x: str, shape: tuple) -> tuple[str, tuple]:
        """Append ``layer`` (state names under ``prefix``) applied to ``x`` of ``shape``."""
        if type(layer) is dl.Sequential:
            for i, sub in enumerate(layer.layers):
                x, shape = self.add(sub, f"{prefix}{i}.", x, shape)
            return x, shape
        out_shape = tuple(layer.output_shape(shape))
        name = f"{prefix.replace('.', '_')}{type(layer).__name__}"
        return self.emit(layer, prefix, name, x, shape, out_shape), out_shape

    def emit(self, layer: Layer, prefix: str, name: str, x: str, shape, out_shape) -> str:
        """The ONNX node(s) of one leaf layer; TypeError naming a layer with no equivalent."""
        from deltanet.binary import PackedConv, PackedDense

        if isinstance(layer, (dl.QActivation, dl.QDense, dl.QConvND, PackedDense, PackedConv)):
            return self.binary(layer, prefix, name, x, shape)
        for cls, op in _UNARY.items():
            if type(layer) is cls:
                return self.node(op, [x], name)
        if isinstance(layer, (dl.LeakyReLU, dl.ELU)):
            alpha = layer.negative_slope if isinstance(layer, dl.LeakyReLU) else layer.alpha
            op = "LeakyRelu" if isinstance(layer, dl.LeakyReLU) else "Elu"
            return self.node(op, [x], name, alpha=float(alpha))
        if isinstance(layer, (dl.Softmax, dl.LogSoftmax)):
            op = "Softmax" if isinstance(layer, dl.Softmax) else "LogSoftmax"
            return self.node(op, [x], name, axis=int(layer.axis))
        if isinstance(layer, dl.Softplus):
            return self.softplus(layer, name, x)
        if isinstance(layer, dl.Dense):
            return self.dense(layer, prefix, name, x)
        if isinstance(layer, (dl.ConvND, dl.ConvTransposeND)):
            return self.conv(layer, prefix, name, x, shape)
        if isinstance(layer, (dl.MaxPoolND, dl.AvgPoolND)):
            return self.pool(layer, name, x, shape, out_shape)
        if isinstance(layer, (dl.GlobalAvgPool, dl.GlobalMaxPool)):
            op = "GlobalAveragePool" if isinstance(layer, dl.GlobalAvgPool) else "GlobalMaxPool"
            return self.node(op, [x], name)
        if isinstance(layer, dl.BatchNormND):
            return self.batch_norm(layer, prefix, name, x)
        if isinstance(layer, (dl.Flatten, dl.Reshape)):
            return self.reshape(layer, name, x, out_shape)
        raise TypeError(
            f"export_onnx: {layer.label()} has no ONNX equivalent (at {prefix or 'the top'}). "
            "Exportable: convolutions, pooling, Dense, activations, BatchNorm, Dropout, "
            "Flatten, Reshape, Sequential and the binary layers."
        )

    def binary(self, layer: Layer, prefix: str, name: str, x: str, shape) -> str:
        """Quantized and packed layers as their float equivalents (Where/Clip-Round, Mul,
        Conv/Gemm): activations are quantized in the graph, weights stored as the values the
        forward pass multiplies by (``alpha q(W)``; a packed layer's bits as ±1 followed by its
        per-output scale and shift)."""
        from deltanet.binary import PackedDense, unpack_bits

        if isinstance(layer, dl.QActivation):
            return self.quantize(layer.act_bit, name, x, final=True)
        xq = self.quantize(getattr(layer, "act_bit", 1), f"{name}.act", x)
        if isinstance(layer, dl.QDense):
            return self.dense(layer, prefix, name, xq, layer.quantized_weight())
        if isinstance(layer, dl.QConvND):
            return self.conv(layer, prefix, name, xq, shape, layer.quantized_weight())
        out = layer.weight_bits.shape[0]
        if isinstance(layer, PackedDense):
            signs = np.where(unpack_bits(layer.weight_bits, layer.in_features), 1.0, -1.0)
            y = self.dense(layer, prefix, f"{name}.dot", xq, signs)
        else:  # bits in (kernel position, channel) order: back to (C_out, C_g, *kernel)
            c_g = layer.in_channels // layer.groups
            bits = unpack_bits(layer.weight_bits, c_g * math.prod(layer.kernel_size))
            signs = np.where(bits, 1.0, -1.0).reshape(out, *layer.kernel_size, c_g)
            y = self.conv(layer, prefix, f"{name}.dot", xq, shape, np.moveaxis(signs, -1, 1))
        axes = (1, out) + (1,) * (len(shape) - 2)
        y = self.node("Mul", [y, self.const(prefix + "scale", layer.scale.reshape(axes))],
                      f"{name}.scaled")  # fmt: skip
        return self.node("Add", [y, self.const(prefix + "shift", layer.shift.reshape(axes))], name)

    def quantize(self, bits: int, name: str, x: str, final: bool = False) -> str:
        """k-bit activations: 1 bit ``x >= 0 ? 1 : -1`` (ONNX Sign(0) is 0, deltanet's +1),
        32 bits the identity, else ``round((2^k - 1) clip(x, 0, 1)) / (2^k - 1)``."""
        if bits == 32:
            return self.node("Identity", [x], name) if final else x
        if bits == 1:
            ge = self.node("GreaterOrEqual", [x, self.const(f"{name}.zero", 0.0)], f"{name}.ge")
            ones = [self.const(f"{name}.plus", 1.0), self.const(f"{name}.minus", -1.0)]
            return self.node("Where", [ge, *ones], name)
        n = self.const(f"{name}.levels", 2.0**bits - 1)
        c = self.node("Clip", [x, self.const(f"{name}.lo", 0.0), self.const(f"{name}.hi", 1.0)],
                      f"{name}.clip")  # fmt: skip
        r = self.node("Round", [self.node("Mul", [c, n], f"{name}.scaled")], f"{name}.round")
        return self.node("Div", [r, n], name)

    def softplus(self, layer: dl.Softplus, name: str, x: str) -> str:
        """ONNX Softplus is ``log(1 + e^x)``: scale by beta, and go linear past the threshold."""
        if layer.beta == 1 and layer.threshold >= 20:  # e^-20 is far below float32's precision
            return self.node("Softplus", [x], name)
        beta = self.const(f"{name}.beta", layer.beta)
        bx = self.node("Mul", [x, beta], f"{name}.bx")
        soft = self.node("Softplus", [bx], f"{name}.soft")
        smooth = self.node("Div", [soft, beta], f"{name}.smooth")
        over = self.node("Greater", [bx, self.const(f"{name}.threshold", layer.threshold)],
                         f"{name}.over")  # fmt: skip
        return self.node("Where", [over, x, smooth], name)

    def dense(self, layer: dl.Dense, prefix: str, name: str, x: str, weight=None) -> str:
        weight = layer.weight.data if weight is None else weight
        inputs = [x, self.const(prefix + "weight", weight)]
        if getattr(layer, "bias", None) is not None:
            inputs.append(self.const(prefix + "bias", layer.bias.data))
        return self.node("Gemm", inputs, name, transB=1)

    def conv(self, layer, prefix: str, name: str, x: str, shape, weight=None) -> str:
        """Conv or ConvTranspose; ``weight`` replaces the layer's (quantized, unpacked)."""
        weight = layer.weight.data if weight is None else weight
        inputs = [x, self.const(prefix + "weight", weight)]
        if getattr(layer, "bias", None) is not None:
            inputs.append(self.const(prefix + "bias", layer.bias.data))
        attrs: dict[str, Any] = {
            "kernel_shape": list(layer.kernel_size),
            "strides": list(layer.stride),
            "dilations": list(layer.dilation),
            "group": layer.groups,
        }
        if isinstance(layer, dl.ConvTransposeND):
            attrs["pads"] = list(layer.padding) * 2
            attrs["output_padding"] = list(layer.output_padding)
            return self.node("ConvTranspose", inputs, name, **attrs)
        pairs = resolve_padding(
            layer.padding, shape[2:], layer.kernel_size, layer.stride, layer.dilation
        )
        attrs["pads"] = [lo for lo, _ in pairs] + [hi for _, hi in pairs]
        return self.node("Conv", inputs, name, **attrs)

    def pool(self, layer: dl.MaxPoolND | dl.AvgPoolND, name: str, x: str, shape, out_shape) -> str:
        """Max and mean pooling; ceil_mode through an explicit Pad (see ``ceil_pad``)."""
        k, s = list(layer.kernel_size), list(layer.stride)
        if isinstance(layer, dl.MaxPoolND):
            if layer.ceil_mode:
                x = self.ceil_pad(layer, name, x, shape, out_shape, -np.inf)
            pads = [0] * (2 * len(k)) if layer.ceil_mode else list(layer.padding) * 2
            dil = list(layer.dilation)
            return self.node("MaxPool", [x], name, kernel_shape=k, strides=s, pads=pads,
                             dilations=dil)  # fmt: skip
        if not layer.ceil_mode:
            return self.node("AveragePool", [x], name, kernel_shape=k, strides=s,
                             pads=list(layer.padding) * 2,
                             count_include_pad=int(layer.count_include_pad))  # fmt: skip
        # Window means over the zero-padded input, times |kernel| / PyTorch's divisor: the
        # divisor depends only on the (fixed) spatial sizes, so it is a constant.
        from deltanet.ops.pool import _avg_divisor

        padded = self.ceil_pad(layer, name, x, shape, out_shape, 0.0)
        mean = self.node("AveragePool", [padded], f"{name}.mean", kernel_shape=k, strides=s)
        divisor = _avg_divisor(
            shape[2:], layer.kernel_size, layer.stride, layer.padding, out_shape[2:],
            layer.count_include_pad, np.dtype(np.float32),
        )  # fmt: skip
        scale = self.const(f"{name}.scale", math.prod(k) / divisor)
        return self.node("Mul", [mean, scale], name)

    def ceil_pad(self, layer, name: str, x: str, shape, out_shape, value: float) -> str:
        """Pad so that a floor-mode pool gives deltanet's ceil_mode output size.

        ONNX's shape inference and onnxruntime disagree on ceil_mode's size when the last
        window would start in the right padding (PyTorch drops it, as onnxruntime does), and
        runtimes reject pads as large as the kernel; an explicit Pad avoids both.
        """
        dil = getattr(layer, "dilation", (1,) * len(layer.kernel_size))
        hi = [
            p + max((o - 1) * s + d * (k - 1) + 1 - (n + 2 * p), 0)
            for o, s, d, k, n, p in zip(
                out_shape[2:], layer.stride, dil, layer.kernel_size, shape[2:], layer.padding
            )
        ]
        pads = self.const(f"{name}.pads", [0, 0, *layer.padding, 0, 0, *hi], np.int64)
        fill = self.const(f"{name}.fill", np.array(value))
        return self.node("Pad", [x, pads, fill], f"{name}.pad")

    def batch_norm(self, layer: dl.BatchNormND, prefix: str, name: str, x: str) -> str:
        if not layer.track_running_stats:
            raise TypeError(
                f"export_onnx: {layer.label()} has no ONNX equivalent: without running "
                "statistics it normalises by the batch's statistics even at inference."
            )
        c = layer.num_features
        scale = layer.weight.data if layer.affine else np.ones(c)
        bias = layer.bias.data if layer.affine else np.zeros(c)
        names = ("weight", "bias") if layer.affine else ("scale", "offset")
        inputs = [
            x,
            self.const(prefix + names[0], scale),
            self.const(prefix + names[1], bias),
            self.const(prefix + "running_mean", layer.running_mean),
            self.const(prefix + "running_var", layer.running_var),
        ]
        return self.node("BatchNormalization", inputs, name, epsilon=layer.eps)

    def reshape(self, layer: dl.Flatten | dl.Reshape, name: str, x: str, out_shape) -> str:
        if isinstance(layer, dl.Flatten) and layer.start_dim == 0:
            raise TypeError(
                f"export_onnx: {layer.label()} merges the batch axis, which stays dynamic in "
                "the exported graph; use start_dim >= 1."
            )
        target = self.const(f"{name}.shape", [0, *out_shape[1:]], np.int64)  # 0: keep batch
        return self.node("Reshape", [x, target], name)
