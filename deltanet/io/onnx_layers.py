"""The ONNX exporters of the built-in layers and containers (see ``deltanet.io.onnx``).

Each function appends the nodes of one layer class and returns its output's name. Containers
export their children with ``graph.add``: a chain feeds each the one before's output; a fork
feeds every branch the same input and joins them with Add (``Add``, ``Residual``) or Concat.
"""

from __future__ import annotations

import math

import numpy as np

from deltanet.io.onnx import Graph, Site, conv, gemm, onnx_exporter
from deltanet.layers import (
    ELU,
    Add,
    AvgPoolND,
    BatchNormND,
    Concat,
    ConvND,
    ConvTransposeND,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    Identity,
    LeakyReLU,
    LogSoftmax,
    MaxPoolND,
    ReLU,
    Reshape,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from deltanet.ops.pool import _avg_divisor

# --- containers -------------------------------------------------------------------------------


@onnx_exporter(Sequential)
def export_sequential(layer: Sequential, graph: Graph, site: Site) -> str:
    x, shape = site.x, site.shape
    for name, child in layer.named_children():
        x, shape = graph.add(child, site.child(name), x, shape)
    return x


@onnx_exporter(Identity)
def export_identity(layer: Identity, graph: Graph, site: Site) -> str:
    return site.x


def _branches(layer: Add | Concat, graph: Graph, site: Site) -> list[tuple[str, tuple]]:
    return [graph.add(b, site.child(n), site.x, site.shape) for n, b in layer.named_children()]


def _sum(graph: Graph, site: Site, outputs: list[tuple[str, tuple]]) -> str:
    """ONNX Add of the outputs, left to right (deltanet's order of summation)."""
    y, shape = outputs[0]
    for i, (other, _) in enumerate(outputs[1:], start=2):
        y = graph.node("Add", [y, other], site.name if i == len(outputs) else f"{site.name}.{i}")
    graph.shapes[y] = shape
    return y


@onnx_exporter(Add)
def export_add(layer: Add, graph: Graph, site: Site) -> str:
    return _sum(graph, site, _branches(layer, graph, site))


@onnx_exporter(Residual)
def export_residual(layer: Residual, graph: Graph, site: Site) -> str:
    y = graph.add(layer.block, site.child("block"), site.x, site.shape)
    if layer.shortcut is None:
        s = (site.x, site.shape)
    else:
        s = graph.add(layer.shortcut, site.child("shortcut"), site.x, site.shape)
    return _sum(graph, site, [y, s])


@onnx_exporter(Concat)
def export_concat(layer: Concat, graph: Graph, site: Site) -> str:
    outputs = _branches(layer, graph, site)
    return graph.node("Concat", [y for y, _ in outputs], site.name, axis=layer.axis)


# --- layers -----------------------------------------------------------------------------------


def _unary(op: str):
    def export(layer, graph: Graph, site: Site) -> str:
        return graph.node(op, [site.x], site.name)

    return export


for _cls, _op in ((ReLU, "Relu"), (Sigmoid, "Sigmoid"), (Tanh, "Tanh"), (Dropout, "Identity")):
    onnx_exporter(_cls)(_unary(_op))
onnx_exporter(GlobalAvgPool)(_unary("GlobalAveragePool"))
onnx_exporter(GlobalMaxPool)(_unary("GlobalMaxPool"))


@onnx_exporter(LeakyReLU)
def export_leaky_relu(layer: LeakyReLU, graph: Graph, site: Site) -> str:
    return graph.node("LeakyRelu", [site.x], site.name, alpha=float(layer.negative_slope))


@onnx_exporter(ELU)
def export_elu(layer: ELU, graph: Graph, site: Site) -> str:
    return graph.node("Elu", [site.x], site.name, alpha=float(layer.alpha))


@onnx_exporter(Softmax)
def export_softmax(layer: Softmax, graph: Graph, site: Site) -> str:
    return graph.node("Softmax", [site.x], site.name, axis=int(layer.axis))


@onnx_exporter(LogSoftmax)
def export_log_softmax(layer: LogSoftmax, graph: Graph, site: Site) -> str:
    return graph.node("LogSoftmax", [site.x], site.name, axis=int(layer.axis))


@onnx_exporter(Softplus)
def export_softplus(layer: Softplus, graph: Graph, site: Site) -> str:
    """ONNX Softplus is ``log(1 + e^x)``: scale by beta, and go linear past the threshold."""
    x, name = site.x, site.name
    if layer.beta == 1 and layer.threshold >= 20:  # e^-20 is far below float32's precision
        return graph.node("Softplus", [x], name)
    beta = graph.const(f"{name}.beta", layer.beta)
    bx = graph.node("Mul", [x, beta], f"{name}.bx")
    soft = graph.node("Softplus", [bx], f"{name}.soft")
    smooth = graph.node("Div", [soft, beta], f"{name}.smooth")
    limit = graph.const(f"{name}.threshold", layer.threshold)
    over = graph.node("Greater", [bx, limit], f"{name}.over")
    return graph.node("Where", [over, x, smooth], name)


@onnx_exporter(Dense)
def export_dense(layer: Dense, graph: Graph, site: Site) -> str:
    return gemm(graph, layer, site, site.x)


@onnx_exporter(ConvND)
def export_conv(layer: ConvND, graph: Graph, site: Site) -> str:
    return conv(graph, layer, site, site.x)


@onnx_exporter(ConvTransposeND)
def export_conv_transpose(layer: ConvTransposeND, graph: Graph, site: Site) -> str:
    return conv(graph, layer, site, site.x, transpose=True)


@onnx_exporter(MaxPoolND)
def export_max_pool(layer: MaxPoolND, graph: Graph, site: Site) -> str:
    """MaxPool; ceil_mode through an explicit Pad (see ``_ceil_pad``)."""
    x, k = site.x, list(layer.kernel_size)
    if layer.ceil_mode:
        x = _ceil_pad(layer, graph, site, -np.inf)
    pads = [0] * (2 * len(k)) if layer.ceil_mode else list(layer.padding) * 2
    return graph.node("MaxPool", [x], site.name, kernel_shape=k, strides=list(layer.stride),
                      pads=pads, dilations=list(layer.dilation))  # fmt: skip


@onnx_exporter(AvgPoolND)
def export_avg_pool(layer: AvgPoolND, graph: Graph, site: Site) -> str:
    k, s, name = list(layer.kernel_size), list(layer.stride), site.name
    if not layer.ceil_mode:
        return graph.node("AveragePool", [site.x], name, kernel_shape=k, strides=s,
                          pads=list(layer.padding) * 2,
                          count_include_pad=int(layer.count_include_pad))  # fmt: skip
    # Window means over the zero-padded input, times |kernel| / PyTorch's divisor: the
    # divisor depends only on the (fixed) spatial sizes, so it is a constant.
    padded = _ceil_pad(layer, graph, site, 0.0)
    mean = graph.node("AveragePool", [padded], f"{name}.mean", kernel_shape=k, strides=s)
    divisor = _avg_divisor(
        site.shape[2:], layer.kernel_size, layer.stride, layer.padding, site.out_shape[2:],
        layer.count_include_pad, np.dtype(np.float32),
    )  # fmt: skip
    scale = graph.const(f"{name}.scale", math.prod(k) / divisor)
    return graph.node("Mul", [mean, scale], name)


def _ceil_pad(layer: MaxPoolND | AvgPoolND, graph: Graph, site: Site, value: float) -> str:
    """Pad so that a floor-mode pool gives deltanet's ceil_mode output size.

    ONNX's shape inference and onnxruntime disagree on ceil_mode's size when the last
    window would start in the right padding (PyTorch drops it, as onnxruntime does), and
    runtimes reject pads as large as the kernel; an explicit Pad avoids both.
    """
    dil = getattr(layer, "dilation", (1,) * len(layer.kernel_size))
    hi = [
        p + max((o - 1) * s + d * (k - 1) + 1 - (n + 2 * p), 0)
        for o, s, d, k, n, p in zip(
            site.out_shape[2:], layer.stride, dil, layer.kernel_size, site.shape[2:], layer.padding
        )
    ]
    name = site.name
    pads = graph.const(f"{name}.pads", [0, 0, *layer.padding, 0, 0, *hi], np.int64)
    fill = graph.const(f"{name}.fill", np.array(value))
    return graph.node("Pad", [site.x, pads, fill], f"{name}.pad")


@onnx_exporter(BatchNormND)
def export_batch_norm(layer: BatchNormND, graph: Graph, site: Site) -> str:
    if not layer.track_running_stats:
        raise TypeError(
            f"export_onnx: {layer.label()} has no ONNX equivalent: without running "
            "statistics it normalises by the batch's statistics even at inference."
        )
    p = site.prefix
    scale, bias = layer.affine_params()  # ones and zeros when not affine
    names = ("weight", "bias") if layer.affine else ("scale", "offset")
    inputs = [
        site.x,
        graph.const(p + names[0], scale),
        graph.const(p + names[1], bias),
        graph.const(p + "running_mean", layer.running_mean),
        graph.const(p + "running_var", layer.running_var),
    ]
    return graph.node("BatchNormalization", inputs, site.name, epsilon=layer.eps)


@onnx_exporter(Flatten)
def export_flatten(layer: Flatten, graph: Graph, site: Site) -> str:
    if layer.start_dim == 0:
        raise TypeError(
            f"export_onnx: {layer.label()} merges the batch axis, which stays dynamic in "
            "the exported graph; use start_dim >= 1."
        )
    return export_reshape(layer, graph, site)


@onnx_exporter(Reshape)
def export_reshape(layer: Flatten | Reshape, graph: Graph, site: Site) -> str:
    target = graph.const(f"{site.name}.shape", [0, *site.out_shape[1:]], np.int64)  # 0: batch
    return graph.node("Reshape", [site.x, target], site.name)
