"""PyTorch state dicts in and out, as safetensors files, without importing torch.

A PyTorch model's ``state_dict()`` names its tensors after its attributes (``conv1.weight``,
``features.3.bias``); deltanet's after its layer tree (``3.weight``, ``block.0.weight``,
``shortcut.1.running_mean``). The two are matched module by module: each tensor group (the
state a layer owns itself: ``weight, bias`` or a batch norm's ``weight, bias, running_mean,
running_var, num_batches_tracked``) of the deltanet model, its layers in the tree's pre-order
(``named_layers``, the order in which a PyTorch module defines its sub-modules), takes the
first unused PyTorch module, in the natural order of their names (``features.2`` before
``features.10``), that has the same entries with the same shapes. Residual, Add, Concat and
custom blocks match the same way.
``safetensors.torch.save_file`` sorts the tensors by dtype and name, so the file alone cannot
give PyTorch's definition order; matching by shape makes names such as ``conv``, ``bn``, ``fc``
work. Modules of identical shapes are taken in the natural order of their names.

Weight layouts are PyTorch's already (conv ``(C_out, C_in/groups, *k)``, dense ``(out, in)``),
so tensors move 1:1; floating-point tensors are cast to the dtype of the receiving side.
"""

from __future__ import annotations

import os
import re

import numpy as np

from deltanet.io.safetensors import FormatError, read_safetensors, write_safetensors
from deltanet.layers.base import Layer

# Within one PyTorch module the state dict lists the parameters, then the buffers.
_LEAF_ORDER = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

Group = tuple[str, list[tuple[str, tuple[int, ...]]]]  # (module prefix, [(leaf, shape)])


def load_torch_weights(model: Layer, path: str | os.PathLike) -> dict[str, str]:
    """Load a PyTorch state dict saved with ``safetensors.torch.save_file`` into ``model``.

    Returns the mapping used, ``{torch_name: deltanet_name}``. Raises FormatError naming the
    first deltanet layer that no PyTorch module fits, or the PyTorch tensors left over; the
    model is changed only once everything matched.
    """
    _check_model("load_torch_weights", model)
    _check_unpacked("load_torch_weights", model, "Load the weights into the unpacked model")
    where = os.fspath(path)
    tensors, _ = read_safetensors(path)
    mapping = match_state(model, tensors, where)
    expected = model.state_dict()
    state = {}
    for torch_name, name in mapping.items():
        state[name] = _cast(where, torch_name, tensors[torch_name], expected[name].dtype)
    model.load_state_dict(state)
    return mapping


def save_torch_weights(
    model: Layer, path: str | os.PathLike, template: str | os.PathLike | None = None
) -> dict[str, str]:
    """Write ``model``'s weights as a PyTorch state dict (safetensors) at ``path``, atomically.

    Without ``template`` the names are deltanet's, which an ``nn.Sequential`` of the same layers
    uses. With ``template`` (a safetensors file of the target PyTorch model's state dict) the
    names and dtypes are the template's, matched as ``load_torch_weights`` matches them.
    Returns ``{torch_name: deltanet_name}``.

    Raises TypeError for a ``model`` that is not a deltanet ``Layer``, ValueError for a bit-packed
    model (export the model before ``pack``), FormatError when ``template`` does not match the
    model.
    """
    tensors, mapping = torch_state(model, template)
    write_safetensors(path, tensors)
    return mapping


def torch_state(
    model: Layer, template: str | os.PathLike | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """What ``save_torch_weights`` writes, without writing: ``(tensors, {torch: deltanet})``.

    Every refusal (a packed model, a template that does not match) happens here, so a caller
    that writes several files can find them all before writing any.
    """
    _check_model("save_torch_weights", model)
    _check_unpacked("save_torch_weights", model, "Export the unpacked model")
    state = model.state_dict()
    if template is None:
        tensors = {name: np.asarray(value, order="C") for name, value in state.items()}
        return tensors, {name: name for name in state}
    where = os.fspath(template)
    reference, _ = read_safetensors(template)
    mapping = match_state(model, reference, where)
    tensors = {
        torch_name: _cast(where, torch_name, state[name], reference[torch_name].dtype)
        for torch_name, name in mapping.items()
    }
    return tensors, mapping


def match_state(model: Layer, tensors: dict[str, np.ndarray], where: str) -> dict[str, str]:
    """``{torch_name: deltanet_name}`` pairing every tensor of both sides; FormatError if not."""
    ours = _model_groups(model)
    if set(tensors) == {f"{prefix}{leaf}" for prefix, entries in ours for leaf, _ in entries}:
        theirs = ours  # the same names (an nn.Sequential of the same layers): match by name
    else:
        theirs = _file_groups(tensors)
    shapes = {name: tuple(a.shape) for name, a in tensors.items()}
    used: set[int] = set()
    mapping: dict[str, str] = {}
    for prefix, entries in ours:
        j = next(
            (
                j
                for j, (tp, _) in enumerate(theirs)
                if j not in used
                and (theirs is not ours or tp == prefix)  # same names: only the same module
                and _signature(tp, theirs[j][1], shapes) == entries
            ),
            None,
        )
        if j is None:
            left = [_describe(tp, te, shapes) for k, (tp, te) in enumerate(theirs) if k not in used]
            raise FormatError(
                f"{where}: no PyTorch module fits deltanet layer {prefix.rstrip('.') or 'model'} "
                f"({_describe(prefix, entries, None)}). PyTorch modules left, in order: "
                f"{'; '.join(left) or 'none'}."
            )
        used.add(j)
        tp = theirs[j][0]
        mapping.update({f"{tp}{leaf}": f"{prefix}{leaf}" for leaf, _ in entries})
    extra = sorted(set(tensors) - set(mapping))
    if extra:
        raise FormatError(
            f"{where}: PyTorch tensors with no deltanet counterpart: {extra!r:.500}. "
            "The two models must have the same layers with parameters, in the same order."
        )
    return mapping


def _signature(prefix: str, entries: list, shapes: dict[str, tuple]) -> list:
    return [(leaf, shapes[prefix + leaf]) for leaf, _ in entries]


def _describe(prefix: str, entries: list, shapes: dict | None) -> str:
    items = _signature(prefix, entries, shapes) if shapes is not None else entries
    body = ", ".join(f"{leaf} {list(shape)}" for leaf, shape in items)
    return f"{prefix.rstrip('.') or '(top)'}: {body}"


def _model_groups(model: Layer) -> list[Group]:
    """Per layer with state of its own, in pre-order: its prefix and its entries, sorted."""
    groups = {prefix: entries for prefix, entries in _file_groups(model.state_dict())}
    order = [f"{name}." if name else "" for name, _ in model.named_layers()]
    return [(prefix, groups[prefix]) for prefix in order if prefix in groups]


def _file_groups(tensors: dict[str, np.ndarray]) -> list[Group]:
    """The file's tensors grouped by module, modules in natural name order."""
    groups: dict[str, list] = {}
    for name, a in tensors.items():
        prefix, _, leaf = name.rpartition(".")
        groups.setdefault(prefix + "." if prefix else "", []).append((leaf, tuple(np.shape(a))))
    for entries in groups.values():
        entries.sort(key=lambda e: (_rank(e[0]), e[0]))
    return sorted(groups.items(), key=lambda g: _natural(g[0]))


def _rank(leaf: str) -> int:
    return _LEAF_ORDER.index(leaf) if leaf in _LEAF_ORDER else len(_LEAF_ORDER)


def _natural(name: str) -> list:
    """``features.10`` after ``features.2``: digit runs compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _cast(where: str, name: str, value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``value`` as ``dtype``: floats to floats, integers (batch counts) to integers only."""
    value = np.asarray(value)
    same_kind = np.issubdtype(value.dtype, np.floating) == np.issubdtype(dtype, np.floating)
    if not same_kind or value.dtype == np.bool_:
        raise FormatError(f"{where}: tensor {name!r}: expected {dtype}. Received: {value.dtype}.")
    return np.asarray(value.astype(dtype, copy=False), order="C")  # keeps 0-d arrays 0-d


def _check_unpacked(where: str, model: Layer, instead: str) -> None:
    """Bit-packed layers (they define ``set_packed``) hold tensors no PyTorch module has."""
    packed = [(name, layer) for name, layer in model.named_layers() if hasattr(layer, "set_packed")]
    if packed:
        name, layer = packed[0]
        leaves = ", ".join(repr(k) for k in layer.buffers())
        raise ValueError(
            f"{where}: layer {name or '(top)'} ({type(layer).__name__}) is bit-packed (one of "
            f"{len(packed)}): it holds {leaves}, tensors no PyTorch module has (packed layers "
            f"are deltanet's inference format, with no PyTorch counterpart). {instead}: the "
            "model before deltanet.binary.pack / `deltanet pack` (its quantized layers hold "
            "float weights, as nn.Linear and nn.Conv2d)."
        )


def _check_model(where: str, model: object) -> None:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: model must be a deltanet Layer. Received: {type(model).__name__}."
        )
