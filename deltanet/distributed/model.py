"""A model's weights, gradients and buffers across MPI ranks.

Rank 0 broadcasts the initial weights (``broadcast_parameters``); each rank computes gradients
on its shard of every global batch; ``allreduce_gradients`` sums them in place over one flat
buffer per dtype (one float32 buffer for the zoo models), so every rank applies the same update.
Per step that moves ``4 x parameters`` bytes each way (LeNet-5: 61,706 parameters, 247 kB).
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import numpy as np

from deltanet.distributed import mpi
from deltanet.layers.base import Layer


def _check_model(where: str, model: Any) -> None:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: model must be a deltanet Layer. Received: {type(model).__name__}."
        )


def _by_dtype(arrays: list[np.ndarray]) -> dict[np.dtype, list[int]]:
    groups: dict[np.dtype, list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.dtype, []).append(i)
    return dict(sorted(groups.items(), key=lambda kv: kv[0].str))  # the same order on all ranks


def broadcast_parameters(model: Layer, root: int = 0) -> None:
    """Copy ``root``'s parameters and buffers (batch-norm statistics) into every rank's model.

    Raises TypeError for a ``model`` that is not a deltanet ``Layer``. Without mpi4py, or with one
    rank, nothing is copied.
    """
    _check_model("broadcast_parameters", model)
    if mpi.world_size() == 1:
        return
    mpi.check_consistent({"model architecture": architecture(model)})  # the buffers must match
    state = model.state_dict()
    names = list(state)
    arrays = [np.asarray(state[k]) for k in names]
    new: dict[str, np.ndarray] = {}
    for dtype, idx in _by_dtype(arrays).items():
        flat = np.concatenate([arrays[i].ravel() for i in idx]).astype(dtype, copy=False)
        mpi.broadcast_array(flat, root, "broadcast_parameters")
        offset = 0
        for i in idx:
            new[names[i]] = flat[offset : offset + arrays[i].size].reshape(arrays[i].shape)
            offset += arrays[i].size
    model.load_state_dict(new)


_BUFFERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> flat buffers


def _flat_buffers(model: Layer) -> list[tuple[np.ndarray, list[Any]]]:
    """One flat buffer per gradient dtype, kept per model so no step allocates one."""
    params = model.parameters()
    key = [(id(p), p.shape, p.grad.dtype) for p in params]
    cached = _BUFFERS.get(model)
    if cached is None or cached[0] != key:
        groups = _by_dtype([p.grad for p in params])
        buffers = [
            (np.empty(sum(params[i].size for i in idx), dtype), [params[i] for i in idx])
            for dtype, idx in groups.items()
        ]
        cached = _BUFFERS[model] = (key, buffers)
    return cached[1]


def allreduce_gradients(
    model: Layer, *, average: bool = True, extra: np.ndarray | None = None
) -> None:
    """Sum (``average``: and divide by the number of ranks) every ``Parameter.grad`` over ranks.

    The gradients are packed into one flat buffer per dtype and reduced in place with
    ``Iallreduce(IN_PLACE)``. ``extra`` (a float64 array) is summed in the same wait (the fit
    loop reduces its loss and accuracy counts with it).

    Raises TypeError for a ``model`` that is not a deltanet ``Layer``.
    """
    _check_model("allreduce_gradients", model)
    if mpi.world_size() == 1:
        return
    buffers = _flat_buffers(model)
    for flat, params in buffers:
        np.concatenate([p.grad.ravel() for p in params], out=flat)
    extras = [] if extra is None else [extra]
    mpi.allreduce_many([flat for flat, _ in buffers] + extras, "allreduce_gradients")
    scale = 1.0 / mpi.world_size() if average else 1.0
    for flat, params in buffers:
        offset = 0
        for p in params:
            p.grad[...] = flat[offset : offset + p.size].reshape(p.shape)
            if average:
                p.grad *= scale
            offset += p.size


def average_buffers(model: Layer) -> None:
    """Average float buffers (batch-norm running statistics) over ranks; the counts from rank 0."""
    if mpi.world_size() == 1:
        return
    state = {k: np.asarray(v) for k, v in model.named_buffers()}
    if not state:
        return
    floats = {k: v for k, v in state.items() if np.issubdtype(v.dtype, np.floating)}
    parts = [v.ravel().astype(np.float64) for v in floats.values()]
    flat = np.concatenate(parts) if parts else np.zeros(0)
    mpi.allreduce_sum(flat, "average_buffers")
    flat /= mpi.world_size()
    counts = np.array([int(v) for k, v in state.items() if k not in floats], np.int64)
    mpi.broadcast_array(counts, 0, "average_buffers")
    new, offset, ints = dict(model.state_dict()), 0, iter(counts)
    for k, v in state.items():
        if k in floats:
            new[k] = flat[offset : offset + v.size].reshape(v.shape).astype(v.dtype)
            offset += v.size
        else:
            new[k] = np.array(next(ints), v.dtype)
    model.load_state_dict(new)


def architecture(model: Layer) -> str:
    """The model's layer tree as JSON: each layer's dotted name, class and settings, and the
    names, shapes and dtypes of its state (no weights). Layers need not be registered."""
    layers = []
    for name, layer in model.named_layers():
        try:
            config: Any = layer.get_config()
        except TypeError:  # a container holding an unregistered layer: its children say it
            config = None
        layers.append([name, type(layer).__qualname__, config])
    state = [
        [k, list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in model.state_dict().items()
    ]
    return json.dumps({"layers": layers, "state": state}, sort_keys=True, default=repr)
