"""The architecture a model file stores: refused on save unless ``load`` would rebuild it.

A model file names each layer by its registered class and ``get_config()`` (``layer_to_dict``);
``load`` calls ``from_config`` and then requires every tensor to fit. Two mistakes in a layer of
one's own would only show at load time, when the model may be gone: a class that is not
registered, and a ``get_config`` that leaves out a constructor argument (the layer rebuilds
with a default, so its weights no longer fit). ``architecture_json`` finds both before ``save``
writes anything: it rebuilds the model from the JSON it is about to store and compares the
names, shapes and dtypes of the state, and the configs, with the model's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from deltanet.layers.base import Layer, LayerList
from deltanet.layers.registry import layer_from_dict, layer_to_dict, registered_name

Signature = dict[str, tuple[tuple[int, ...], str]]  # state name -> (shape, dtype)


def architecture_json(model: Layer) -> str:
    """``layer_to_dict(model)`` as JSON, once it is known to rebuild ``model``'s structure.

    TypeError naming the first layer whose class is not registered; ValueError naming a layer
    held at two places (the file would rebuild two), or the deepest layer that its own config
    does not rebuild (fix its ``get_config``).
    """
    for name, layer in model.named_layers():
        if type(layer) is not LayerList:  # a list is rebuilt by the layer that holds it
            try:
                registered_name(layer)
            except TypeError as err:
                raise TypeError(
                    f"save: the layer at {_where(name)}: {err} Nothing was written."
                ) from None
    shared = _held_twice(model)
    if shared:
        first, second, layer = shared
        raise ValueError(
            f"save: the same {layer.label()} is held at {_where(first)} and {_where(second)}; "
            "a model file would rebuild two separate layers. Give each place a layer of its "
            "own. Nothing was written."
        )
    text = dumps(layer_to_dict(model), "architecture")
    problem = _rebuild_problem(model, json.loads(text))
    if problem:
        name, layer, detail = _culprit(model)
        raise ValueError(
            f"save: {layer.label()} at {_where(name)} does not rebuild from its get_config(): "
            f"{detail}. Make {type(layer).__name__}.get_config() return every argument of its "
            "__init__ (and from_config accept them), or the file could not be loaded. "
            "Nothing was written."
        )
    return text


def dumps(value: Any, what: str) -> str:
    """``value`` as a JSON string; NumPy scalars and arrays become plain numbers and lists."""

    def plain(obj: Any) -> Any:
        if isinstance(obj, (np.generic, np.ndarray)):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    try:
        return json.dumps(value, default=plain)
    except (TypeError, ValueError) as err:
        raise TypeError(f"save: {what} must be JSON-able. {err}.") from err


def _rebuild_problem(layer: Layer, entry: Any) -> str:
    """Why ``entry`` (JSON as it will be stored) does not rebuild ``layer``; "" when it does."""
    # A custom layer may draw its weights from NumPy's global RNG: saving must not move it.
    state = np.random.get_state()  # noqa: NPY002
    try:
        rebuilt = layer_from_dict(entry)
        rebuilt_entry = json.loads(dumps(layer_to_dict(rebuilt), "architecture"))
    except Exception as err:  # whatever a custom from_config raises: report it
        return f"rebuilding it raised {type(err).__name__}: {err}"
    finally:
        np.random.set_state(state)  # noqa: NPY002
    ours, theirs = _signature(layer), _signature(rebuilt)
    if ours != theirs:
        return _difference(ours, theirs)
    if rebuilt_entry != entry:
        return f"the rebuilt layer's config is {rebuilt_entry!r:.300}, not {entry!r:.300}"
    return ""


def _culprit(model: Layer) -> tuple[str, Layer, str]:
    """The deepest layer whose own config does not rebuild it, and why.

    Reversed pre-order visits every layer after all the layers below it, so the first failure
    is a layer whose sub-layers all rebuild: the one whose ``get_config`` is at fault.
    """
    layers = [(n, lay) for n, lay in model.named_layers() if type(lay) is not LayerList]
    for name, layer in reversed(layers):
        problem = _rebuild_problem(layer, json.loads(dumps(layer_to_dict(layer), "config")))
        if problem:
            return name, layer, problem
    return "", model, "it rebuilds differently"  # unreachable: the whole model failed


def _held_twice(model: Layer) -> tuple[str, str, Layer] | None:
    """The first layer found at two places of the tree (its two names), or None."""
    seen: dict[int, str] = {}
    stack = [("", model)]
    while stack:
        name, layer = stack.pop()
        if id(layer) in seen:
            return seen[id(layer)], name, layer
        seen[id(layer)] = name
        kids = [(f"{name}.{k}" if name else k, c) for k, c in layer.named_children()]
        stack.extend(reversed(kids))  # pre-order: the first place is named first
    return None


def _signature(layer: Layer) -> Signature:
    return {k: (np.shape(v), np.asarray(v).dtype.name) for k, v in layer.state_dict().items()}


def _difference(ours: Signature, theirs: Signature) -> str:
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra:
        return f"the rebuilt layer lacks {missing!r:.200} and has {extra!r:.200} in addition"
    name = next(k for k in ours if ours[k] != theirs[k])
    (shape, dtype), (new_shape, new_dtype) = ours[name], theirs[name]
    return f"{name} is {dtype} {shape} in the model but {new_dtype} {new_shape} when rebuilt"


def _where(name: str) -> str:
    return repr(name) if name else "the top"
