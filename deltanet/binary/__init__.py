"""Bit-packed inference for binary networks: ``pack(model)``, packed layers and kernels."""

from deltanet.binary.kernels import pack_bits, pack_signs, unpack_bits, xor_popcount
from deltanet.binary.layers import PackedConv, PackedDense
from deltanet.binary.ops import conv_counts, dense_counts
from deltanet.binary.pack import pack, packed_weight_bytes

__all__ = [
    "PackedConv",
    "PackedDense",
    "conv_counts",
    "dense_counts",
    "pack",
    "pack_bits",
    "pack_signs",
    "packed_weight_bytes",
    "unpack_bits",
    "xor_popcount",
]
