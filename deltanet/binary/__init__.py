"""Binary networks, a plug-in on the layers as larq is on Keras: quantizers with their
straight-through backward (``quantizers``), quantized layers that train (``layers``), and
bit-packed inference (``pack(model)``, the ``packed`` layers and the ``popcount`` kernels).

Importing the package registers the quantized and packed layers, so ``deltanet.load`` rebuilds
them from model files (``import deltanet`` imports it). Its modules import the modules of
``deltanet.layers`` they use, never the ``deltanet.layers`` package itself.
"""

from deltanet.binary import onnx_exporters  # registers the ONNX exporters of these layers
from deltanet.binary.layers import QActivation, QConv1D, QConv2D, QConv3D, QConvND, QDense
from deltanet.binary.pack import pack, packed_weight_bytes
from deltanet.binary.packed import PackedConv, PackedDense, conv_counts, dense_counts
from deltanet.binary.popcount import pack_bits, pack_signs, unpack_bits, xor_popcount

__all__ = [
    "PackedConv",
    "PackedDense",
    "QActivation",
    "QConv1D",
    "QConv2D",
    "QConv3D",
    "QConvND",
    "QDense",
    "conv_counts",
    "dense_counts",
    "pack",
    "pack_bits",
    "pack_signs",
    "packed_weight_bytes",
    "unpack_bits",
    "xor_popcount",
]
