"""ONNX exporters of the binary and k-bit layers, registered with ``deltanet.io.onnx``.

They export float equivalents: activations are quantized in the graph (1 bit as
``Where(x >= 0, 1, -1)``, since ONNX ``Sign(0)`` is 0 and deltanet's is +1; k bits as
``round((2^k - 1) clip(x, 0, 1)) / (2^k - 1)``), weights are stored as the values the forward
pass multiplies by (``alpha q(W)``; a packed layer's bits as ±1, followed by its per-output
``scale`` and ``shift``), then Gemm or Conv. Importing ``deltanet.binary`` registers them.
"""

from __future__ import annotations

import math

import numpy as np

from deltanet.binary.layers import QActivation, QConvND, QDense
from deltanet.binary.packed import PackedConv, PackedDense
from deltanet.binary.popcount import unpack_bits
from deltanet.io.onnx import Graph, Site, conv, gemm, onnx_exporter


@onnx_exporter(QActivation)
def export_qactivation(layer: QActivation, graph: Graph, site: Site) -> str:
    return quantize(graph, layer.act_bit, site.name, site.x, final=True)


@onnx_exporter(QDense)
def export_qdense(layer: QDense, graph: Graph, site: Site) -> str:
    xq = quantize(graph, layer.act_bit, f"{site.name}.act", site.x)
    return gemm(graph, layer, site, xq, layer.quantized_weight())


@onnx_exporter(QConvND)
def export_qconv(layer: QConvND, graph: Graph, site: Site) -> str:
    xq = quantize(graph, layer.act_bit, f"{site.name}.act", site.x)
    return conv(graph, layer, site, xq, layer.quantized_weight())


@onnx_exporter(PackedDense)
def export_packed_dense(layer: PackedDense, graph: Graph, site: Site) -> str:
    xq = quantize(graph, 1, f"{site.name}.act", site.x)
    signs = np.where(unpack_bits(layer.weight_bits, layer.in_features), 1.0, -1.0)
    return _affine(layer, graph, site, gemm(graph, layer, site, xq, signs, f"{site.name}.dot"))


@onnx_exporter(PackedConv)
def export_packed_conv(layer: PackedConv, graph: Graph, site: Site) -> str:
    """The bits, in (kernel position, channel) order, back to a (C_out, C_g, *kernel) weight."""
    xq = quantize(graph, 1, f"{site.name}.act", site.x)
    out, c_g = layer.weight_bits.shape[0], layer.in_channels // layer.groups
    bits = unpack_bits(layer.weight_bits, c_g * math.prod(layer.kernel_size))
    signs = np.where(bits, 1.0, -1.0).reshape(out, *layer.kernel_size, c_g)
    y = conv(graph, layer, site, xq, np.moveaxis(signs, -1, 1), f"{site.name}.dot")
    return _affine(layer, graph, site, y)


def _affine(layer: PackedDense | PackedConv, graph: Graph, site: Site, y: str) -> str:
    """``y * scale + shift``, per output channel (axis 1)."""
    axes = (1, layer.weight_bits.shape[0]) + (1,) * (len(site.shape) - 2)
    p, name = site.prefix, site.name
    y = graph.node(
        "Mul", [y, graph.const(p + "scale", layer.scale.reshape(axes))], f"{name}.scaled"
    )
    return graph.node("Add", [y, graph.const(p + "shift", layer.shift.reshape(axes))], name)


def quantize(graph: Graph, bits: int, name: str, x: str, final: bool = False) -> str:
    """k-bit activations: 1 bit ``x >= 0 ? 1 : -1``, 32 bits the identity (an Identity node
    when ``final``, so the layer has a node of its own), else the rounding of the docstring."""
    if bits == 32:
        return graph.node("Identity", [x], name) if final else x
    if bits == 1:
        ge = graph.node("GreaterOrEqual", [x, graph.const(f"{name}.zero", 0.0)], f"{name}.ge")
        ones = [graph.const(f"{name}.plus", 1.0), graph.const(f"{name}.minus", -1.0)]
        return graph.node("Where", [ge, *ones], name)
    n = graph.const(f"{name}.levels", 2.0**bits - 1)
    lo, hi = graph.const(f"{name}.lo", 0.0), graph.const(f"{name}.hi", 1.0)
    c = graph.node("Clip", [x, lo, hi], f"{name}.clip")
    r = graph.node("Round", [graph.node("Mul", [c, n], f"{name}.scaled")], f"{name}.round")
    return graph.node("Div", [r, n], name)
