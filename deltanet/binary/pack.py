"""``pack(model)``: an inference-only copy of a model whose 1-bit layers compute on bits.

Every ``QDense`` / ``QConv*`` with ``act_bit = weight_bit = 1`` becomes a ``PackedDense`` /
``PackedConv`` holding ``sign(W)`` as uint64 words, its scaling ``alpha`` and bias as the affine
``count * scale + shift``; a ``BatchNorm*`` right after it (eval mode, running statistics) is
folded into that affine: ``s = gamma / sqrt(var + eps)``, ``scale = alpha s``,
``shift = (b - mean) s + beta``. Every other layer is copied as it is.
"""

from __future__ import annotations

import copy

import numpy as np

from deltanet.binary.kernels import pack_signs
from deltanet.binary.layers import PackedConv, PackedDense
from deltanet.binary.ops import pack_conv_weight
from deltanet.layers.base import Layer
from deltanet.layers.binary import QConvND, QDense
from deltanet.layers.norm import BatchNormND
from deltanet.layers.sequential import Sequential
from deltanet.ops.binary import weight_scale


def pack(model: Layer, *, return_report: bool = False) -> Layer | tuple[Layer, list[str]]:
    """The packed, eval-mode copy of ``model``; with ``return_report`` also one line per layer
    saying what became of it. ValueError when ``model`` has no 1-bit layer."""
    if not isinstance(model, Layer):
        raise TypeError(f"pack: expected a deltanet Layer. Received: {type(model).__name__}.")
    report: list[str] = []
    packed = _pack_layer(model, report, "")
    if not any("->" in line for line in report):
        found = sorted({line.split(": ", 1)[1].split("(")[0] for line in report})
        raise ValueError(
            f"pack: {model.label()} has no 1-bit layer (QDense or QConv1D/2D/3D with act_bit=1 "
            f"and weight_bit=1) to pack. Received layers: {', '.join(found)}."
        )
    packed.eval()
    return (packed, report) if return_report else packed


def _is_binary(layer: Layer) -> bool:
    return isinstance(layer, (QDense, QConvND)) and layer.is_binary


def _pack_layer(layer: Layer, report: list[str], path: str) -> Layer:
    if isinstance(layer, Sequential):
        return Sequential(*_pack_list(layer.layers, report, path))
    if _is_binary(layer):
        report.append(f"{path or 'model'}: {layer.label()} -> {_packed_name(layer)} (1-bit)")
        return _packed(layer, None)
    report.append(f"{path or 'model'}: {layer.label()} kept as it is")
    return copy.deepcopy(layer)


def _pack_list(layers: list[Layer], report: list[str], path: str) -> list[Layer]:
    out, i = [], 0
    while i < len(layers):
        layer, where = layers[i], f"{path}{i}"
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if _is_binary(layer) and _foldable(nxt, layer):
            report.append(
                f"{where}: {layer.label()} + {nxt.label()} -> {_packed_name(layer)} "
                "(1-bit, batch norm folded into the affine)"
            )
            out.append(_packed(layer, nxt))
            i += 2
            continue
        out.append(
            _pack_layer(layer, report, f"{where}." if isinstance(layer, Sequential) else where)
        )
        i += 1
    return out


def _foldable(bn: Layer | None, layer: Layer) -> bool:
    channels = layer.out_features if isinstance(layer, QDense) else layer.out_channels
    return isinstance(bn, BatchNormND) and bn.track_running_stats and bn.num_features == channels


def _packed_name(layer: Layer) -> str:
    return "PackedDense" if isinstance(layer, QDense) else "PackedConv"


def _packed(layer: QDense | QConvND, bn: BatchNormND | None) -> Layer:
    """The packed layer of a 1-bit ``layer`` (and the batch norm that follows it, if any)."""
    w = layer.weight.data
    dtype = w.dtype
    if isinstance(layer, QDense):
        out = PackedDense(layer.in_features, layer.out_features, dtype=dtype)
        bits = pack_signs(w)
    else:
        cfg = layer.get_config()
        out = PackedConv(
            cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], cfg["stride"],
            cfg["padding"], cfg["dilation"], cfg["groups"], dtype=dtype,
        )  # fmt: skip
        bits = pack_conv_weight(w, layer.groups)
    n_out = w.shape[0]
    scale = np.broadcast_to(weight_scale(w.astype(np.float64), layer.scaling).ravel(), (n_out,))
    shift = np.zeros(n_out) if layer.bias is None else layer.bias.data.astype(np.float64)
    if bn is not None:
        gamma, beta = bn._affine(np.dtype(np.float64))
        s = gamma / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
        scale, shift = scale * s, (shift - bn.running_mean) * s + beta
    out.set_packed(bits, scale, shift)
    return out


def packed_weight_bytes(model: Layer) -> int:
    """Bytes of the bit-packed weights (``weight_bits`` buffers) of a packed model."""
    return sum(v.nbytes for k, v in model.named_buffers() if k.endswith("weight_bits"))
