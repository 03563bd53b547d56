"""``pack(model)``: an inference-only copy of a model whose 1-bit layers compute on bits.

``pack`` walks the layer tree and asks every layer ``layer.to_packed(following)``; a layer that
can run on bits answers ``(packed_layer, folded)``, any other has no such method or answers None.
``QDense`` / ``QConv*`` with ``act_bit = weight_bit = 1`` answer with a ``PackedDense`` /
``PackedConv`` (``sign(W)`` as uint64 words, scaling and bias as the affine
``count * scale + shift``); a layer of your own packs itself by defining the same method.

Inside a ``Sequential``, ``following`` is the next layer, and a ``BatchNorm*`` right after a
1-bit layer (its running statistics) is folded into that layer's affine and leaves the chain;
a 1-bit ``QActivation`` right before one leaves it too (the packed layer takes the signs of its
input itself, and ``sign(sign(x)) = sign(x)``, so the outputs are the same).
Any other container (``Residual``, ``Add``, ``Concat``, a ``LayerList``, a block of your own) is
copied with each child replaced by its packed copy, wherever the container refers to that child.
Every other layer is copied as it is. ``pack_with_sizes`` also says how many bytes of tensors
each kind of layer (1-bit, folded batch norm, dropped sign, kept float) held before and holds
after: the latent float weights of a 1-bit layer become ``weight_bits`` plus its affine, while
the first and last layers, shortcuts and other float layers keep theirs.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, NamedTuple, overload

from deltanet.binary.layers import QActivation
from deltanet.layers.base import Layer
from deltanet.layers.containers import Sequential

# The kinds of ``pack_with_sizes``, in the order a report lists them.
KINDS = ("1-bit layers", "folded batch norms", "dropped signs", "float layers")


class PackResult(NamedTuple):
    """What ``pack_with_sizes`` returns: the packed model, the report lines of ``pack``, and
    ``sizes[kind] = (layers, bytes before, bytes after)`` over the model's tensors (parameters
    and buffers), for each of ``KINDS``."""

    model: Layer
    report: list[str]
    sizes: dict[str, tuple[int, int, int]]


# The overloads tell a type checker what return_report decides: the model, or (model, report).
@overload
def pack(model: Layer, *, return_report: Literal[False] = False) -> Layer: ...
@overload
def pack(model: Layer, *, return_report: Literal[True]) -> tuple[Layer, list[str]]: ...
@overload
def pack(model: Layer, *, return_report: bool = False) -> Layer | tuple[Layer, list[str]]: ...


def pack(model: Layer, *, return_report: bool = False) -> Layer | tuple[Layer, list[str]]:
    """The packed, eval-mode copy of ``model``; with ``return_report`` also one line per layer,
    by its dotted name, saying what became of it. ValueError when ``model`` has no 1-bit layer."""
    result = pack_with_sizes(model)
    return (result.model, result.report) if return_report else result.model


def pack_with_sizes(model: Layer) -> PackResult:
    """``pack(model)`` with its report and the bytes of tensors per kind of layer (``PackResult``).

    Raises TypeError when ``model`` is not a Layer, ValueError when it has no 1-bit layer.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"pack: expected a deltanet Layer. Received: {type(model).__name__}.")
    packer = _Packer()
    packed, _ = packer.convert(model, "")
    if not packer.sizes["1-bit layers"][0]:
        found = sorted({line.split(": ", 1)[1].split("(")[0] for line in packer.report})
        raise ValueError(
            f"pack: {model.label()} has no 1-bit layer (QDense or QConv1D/2D/3D with act_bit=1 "
            f"and weight_bit=1) to pack. Received layers: {', '.join(found)}."
        )
    packed.clear_cache()  # the copies of the model's forward caches
    packed.eval()
    sizes = {kind: (n, before, after) for kind, (n, before, after) in packer.sizes.items()}
    return PackResult(packed, packer.report, sizes)


class _Packer:
    """One walk of the tree. ``memo`` is the ``deepcopy`` memo of the whole walk: a layer
    converted already (a packed layer, or a copy) stands in for the original wherever a
    container's copy refers to it, and a layer held twice is converted once."""

    def __init__(self) -> None:
        self.report: list[str] = []
        self.memo: dict[int, Any] = {}
        self.sizes = {kind: [0, 0, 0] for kind in KINDS}  # layers, bytes before, bytes after

    def count(self, kind: str, before: Layer, after: Layer | None) -> None:
        entry = self.sizes[kind]
        entry[0] += 1
        entry[1] += _own_bytes(before)
        entry[2] += 0 if after is None else _own_bytes(after)

    def convert(
        self, layer: Layer, name: str, following: Layer | None = None
    ) -> tuple[Layer, bool]:
        """The packed copy of ``layer`` (dotted ``name``) and whether it folded ``following``."""
        if id(layer) in self.memo:
            return self.memo[id(layer)], False
        where = name or "model"
        hook = getattr(layer, "to_packed", None)
        answer = hook(following) if callable(hook) else None
        if answer is not None:
            out, folded = answer
            kind = type(out).__name__
            self.count("1-bit layers", layer, out)
            if folded:
                assert following is not None
                self.count("folded batch norms", following, None)
                self.report.append(
                    f"{where}: {layer.label()} + {following.label()} -> {kind} "
                    "(1-bit, batch norm folded into the affine)"
                )
                return out, True  # not memoised: a second reference must not fold
            self.report.append(f"{where}: {layer.label()} -> {kind} (1-bit)")
        elif type(layer) is Sequential:  # a subclass may run its layers otherwise: no folding
            out = Sequential(*self._chain(layer, name))
        else:
            kids = list(layer.named_children())
            if not kids:
                self.report.append(f"{where}: {layer.label()} kept as it is")
            for key, child in kids:
                self.convert(child, _join(name, key))
            out = copy.deepcopy(layer, self.memo)
            if not kids or _own_bytes(layer):  # a container counts only with tensors of its own
                self.count("float layers", layer, out)
        self.memo[id(layer)] = out
        return out, False

    def _chain(self, seq: Sequential, name: str) -> list[Layer]:
        """The converted layers of a chain, each asked with the next layer as ``following``."""
        kids = list(seq.named_children())
        out, i = [], 0
        while i < len(kids):
            key, child = kids[i]
            nxt = kids[i + 1][1] if i + 1 < len(kids) else None
            if _sign_before_binary(child, nxt) and id(child) not in self.memo:
                self.report.append(
                    f"{_join(name, key) or 'model'}: {child.label()} dropped (the packed "
                    "layer after it takes the signs itself)"
                )
                self.count("dropped signs", child, None)
                i += 1
                continue
            packed, folded = self.convert(child, _join(name, key), nxt)
            out.append(packed)
            i += 2 if folded else 1
        return out


def _sign_before_binary(layer: Layer, following: Layer | None) -> bool:
    """A 1-bit QActivation (sign, whatever its backward) right before a 1-bit layer."""
    return (
        type(layer) is QActivation
        and layer.act_bit == 1
        and bool(getattr(following, "is_binary", False))
        and callable(getattr(following, "to_packed", None))
    )


def _own_bytes(layer: Layer) -> int:
    """Bytes of the tensors (parameters and buffers) a layer holds itself, not its children's."""
    own = [p.data for name, p in layer.named_parameters() if "." not in name]  # no child's name
    return sum(a.nbytes for a in [*own, *layer.buffers().values()])


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def packed_weight_bytes(model: Layer) -> int:
    """Bytes of the bit-packed weights (``weight_bits`` buffers) of a packed model."""
    return sum(v.nbytes for k, v in model.named_buffers() if k.endswith("weight_bits"))
