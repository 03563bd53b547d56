"""Model files: one safetensors file with the weights, the architecture and optional state.

``save(model, path, optimizer=..., metadata=...)`` writes (atomically, see
``deltanet.io.safetensors.atomic_write``):

- tensors ``model.<name>`` for each entry of ``model.state_dict()`` (parameters and batch-norm
  buffers), and ``optim.<name>`` for each entry of ``optimizer.state_dict()`` when an optimizer
  is given;
- ``__metadata__`` (str -> str, each value a JSON document): ``deltanet_version``,
  ``architecture`` (``layer_to_dict(model)``), ``optimizer`` (``optimizer.get_config()``) and
  ``user`` (the caller's ``metadata`` dict: epoch, step, RNG state, history, ...).

The architecture names only classes registered with ``@deltanet.register_layer`` (every built-in
layer is; see ``deltanet.layers.registry``). ``save`` refuses, before it writes anything, a model
holding an unregistered class, or one whose ``get_config`` does not rebuild the same parameters
and buffers (``deltanet.io.architecture``). ``load`` / ``load_checkpoint`` never execute code
from the file: layers are rebuilt only from registered classes, and everything is validated
(tensor names, shapes and dtypes against the rebuilt architecture); anything wrong raises
``FormatError`` naming the file; a class the file names but no imported module registered is
one too (its message says to import the module that defines it).
A missing or unreadable file raises the usual ``OSError``. Memory stays bounded: besides the
file's own bytes, a hostile architecture can make the layers allocate at most about 48 bytes
times max(``MIN_ELEMENT_BOUND``, ``ELEMENT_BOUND_FACTOR`` x the values the file holds).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deltanet._version import __version__
from deltanet.io.architecture import architecture_json, dumps
from deltanet.io.safetensors import FormatError, PathLike, read_safetensors, write_safetensors
from deltanet.layers.base import Layer
from deltanet.layers.registry import layer_from_dict

__all__ = [
    "ELEMENT_BOUND_FACTOR",
    "MIN_ELEMENT_BOUND",
    "Checkpoint",
    "FormatError",
    "load",
    "load_checkpoint",
    "read_safetensors",
    "save",
    "write_safetensors",
]

MODEL_PREFIX, OPTIM_PREFIX = "model.", "optim."
# The architecture is rebuilt before its weights are compared with the file's tensors, so its
# size is bounded first: a small hostile file must not make the layers allocate gigabytes.
MIN_ELEMENT_BOUND = 2**21  # any architecture may count this many values (_allocation_bound)
ELEMENT_BOUND_FACTOR = 64  # ... or this many times the number of values the file holds


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns; ``optimizer_*`` are None when none was saved."""

    model: Layer
    optimizer_state: dict[str, np.ndarray] | None
    optimizer_config: dict[str, Any] | None
    metadata: dict[str, Any]


# --- saving ---------------------------------------------------------------------------------


def save(
    model: Layer,
    path: PathLike,
    *,
    optimizer: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Save ``model`` (architecture and weights), optionally optimizer state and metadata.

    ``optimizer`` needs ``state_dict() -> dict[str, ndarray]`` and ``get_config() -> dict``.
    ``metadata`` is a dict with str keys and JSON-able values (NumPy scalars and arrays become
    numbers and lists); ``load_checkpoint`` returns it as JSON gives it back (tuples as lists).
    The write is atomic: ``path`` holds the old file or the new one, never a partial one.
    Refused before anything is written (TypeError or ValueError naming the layer) when a layer
    of ``model`` is not registered or its ``get_config`` does not rebuild it.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"save: model must be a deltanet Layer. Received: {type(model).__name__}.")
    header = {
        "deltanet_version": dumps(__version__, "deltanet_version"),
        "architecture": architecture_json(model),  # refuses what load could not rebuild
    }
    tensors = _prefixed(MODEL_PREFIX, model.state_dict(), "model.state_dict()")
    if optimizer is not None:
        if not (hasattr(optimizer, "state_dict") and hasattr(optimizer, "get_config")):
            raise TypeError(
                "save: optimizer must have state_dict() and get_config(). "
                f"Received: {type(optimizer).__name__}."
            )
        tensors.update(_prefixed(OPTIM_PREFIX, optimizer.state_dict(), "optimizer.state_dict()"))
        header["optimizer"] = dumps(optimizer.get_config(), "optimizer.get_config()")
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise TypeError(f"save: metadata must be a dict with str keys. Received: {metadata!r}.")
        header["user"] = dumps(dict(metadata), "metadata")
    write_safetensors(path, tensors, header)


def _prefixed(prefix: str, state: Any, what: str) -> dict[str, np.ndarray]:
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise TypeError(f"save: {what} must be a dict of str -> array. Received: {type(state)}.")
    return {prefix + name: np.asarray(value) for name, value in state.items()}


# --- loading --------------------------------------------------------------------------------


def load(path: PathLike) -> Layer:
    """The model saved at ``path`` (in training mode, as freshly built); FormatError if invalid."""
    return load_checkpoint(path).model


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Model, optimizer state and config, and user metadata saved by ``save``.

    Returns a ``Checkpoint``. Raises FormatError (naming the file and what is wrong) for a file that
    is not a valid deltanet model file: truncated, malformed, of another kind, or with tensors that
    disagree with its architecture; OSError when it cannot be read.
    """
    where = os.fspath(path)
    tensors, meta = read_safetensors(path)
    if "architecture" not in meta:
        raise FormatError(f"{where}: not a deltanet model file: {_no_architecture(where, tensors)}")
    model_state, optim_state = _split(where, tensors)
    if optim_state and "optimizer" not in meta:
        raise FormatError(f"{where}: optimizer tensors without an 'optimizer' config.")
    optimizer_config = _loads_object(where, meta, "optimizer") if "optimizer" in meta else None
    user = _loads_object(where, meta, "user") if "user" in meta else {}
    model = _build_model(where, _loads(where, meta, "architecture"), model_state)
    optimizer_state = None if optimizer_config is None else optim_state
    return Checkpoint(model, optimizer_state, optimizer_config, user)


def _no_architecture(where: str, tensors: dict[str, np.ndarray]) -> str:
    """Why a safetensors file without deltanet's metadata cannot load, and what to do."""
    names = list(tensors)
    if names and not any(n.startswith((MODEL_PREFIX, OPTIM_PREFIX)) for n in names):
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        return (
            f"its {len(names)} tensors ({shown:.200}) have no architecture with them: a PyTorch "
            "state dict (safetensors.torch.save_file, or deltanet.save_torch_weights)? Build the "
            "same architecture in deltanet (deltanet.zoo.build_model or your layers) and load "
            f"them with deltanet.load_torch_weights(model, {where!r})."
        )
    return (
        "its metadata has no 'architecture' (read plain tensor files with read_safetensors; a "
        "PyTorch state dict loads into a deltanet model with deltanet.load_torch_weights)."
    )


def _split(where: str, tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """``(model_state, optimizer_state)`` with the prefixes removed; other names are errors."""
    model, optim = {}, {}
    for name, value in tensors.items():
        if name.startswith(MODEL_PREFIX):
            model[name[len(MODEL_PREFIX) :]] = value
        elif name.startswith(OPTIM_PREFIX):
            optim[name[len(OPTIM_PREFIX) :]] = value
        else:
            raise FormatError(
                f"{where}: unexpected tensor {name!r:.100}: names must start with "
                f"{MODEL_PREFIX!r} or {OPTIM_PREFIX!r}."
            )
    return model, optim


def _loads(where: str, meta: dict[str, str], key: str) -> Any:
    """The JSON document under ``meta[key]``."""
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError) as err:
        raise FormatError(f"{where}: metadata {key!r} is not valid JSON: {err}.") from None


def _loads_object(where: str, meta: dict[str, str], key: str) -> dict[str, Any]:
    value = _loads(where, meta, key)
    if not isinstance(value, dict):
        raise FormatError(
            f"{where}: metadata {key!r} must be a JSON object. Received: {value!r:.200}."
        )
    return value


def _build_model(where: str, architecture: Any, state: dict[str, np.ndarray]) -> Layer:
    """Rebuild the architecture and load ``state``, checking names, shapes and dtypes."""
    held = sum(a.size for a in state.values())
    limit = max(MIN_ELEMENT_BOUND, ELEMENT_BOUND_FACTOR * held)
    bound = _allocation_bound(architecture, limit)
    if bound > limit:
        raise FormatError(
            f"{where}: the architecture's sizes (up to {bound} values) are out of all proportion "
            f"to the {held} values the file holds; refusing to build it."
        )
    try:
        model = layer_from_dict(architecture)
    except Exception as err:  # any failure of a hostile config is a format error, chained
        raise FormatError(f"{where}: invalid architecture: {err}") from err
    if not isinstance(model, Layer):
        raise FormatError(f"{where}: the architecture did not build a Layer.")
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise FormatError(
            f"{where}: tensors disagree with the architecture. Missing: "
            f"{[MODEL_PREFIX + n for n in missing]}. Unexpected: "
            f"{[MODEL_PREFIX + n for n in unexpected]!r:.500}."
        )
    for name, value in expected.items():
        got = state[name]
        if got.shape != value.shape or got.dtype != value.dtype:
            raise FormatError(
                f"{where}: tensor {MODEL_PREFIX + name!r}: the architecture expects "
                f"{value.dtype} {value.shape}. Received: {got.dtype} {got.shape}."
            )
    try:
        model.load_state_dict(state)
    except Exception as err:
        raise FormatError(f"{where}: cannot load the weights: {err}") from err
    return model


def _allocation_bound(architecture: Any, limit: int) -> int:
    """An upper bound on the number of values the layers of ``architecture`` allocate.

    A node's bound is the product of the numbers (> 1) in it, nested lists included: a weight's
    size (out * in * prod(kernel)) divides it. Layers keep a few arrays of that size (weight,
    bias, gradients, running statistics), so memory stays within about 48 bytes per counted
    value. Counting stops past ``limit``; iterative, so deep nesting cannot exhaust the stack.
    """
    total, stack = 0, [architecture]
    while stack and total <= limit:
        node, product = stack.pop(), 1
        if isinstance(node, list):
            stack.extend(node)
            continue
        items = list(node.values()) if isinstance(node, dict) else []
        while items:
            v = items.pop()
            if isinstance(v, list):
                items.extend(v)
            elif isinstance(v, dict):
                stack.append(v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and v > 1:
                product = min(product * math.ceil(min(v, limit + 1)), limit + 1)
        total += product
    return total
