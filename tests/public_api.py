"""The public names of deltanet: what the API reference documents (tests/test_site.py) and
what must have docstrings (tests/test_docstrings.py)."""

from __future__ import annotations

import importlib
import inspect
import types

import deltanet

# The modules whose public names the API reference documents, besides ``deltanet.__all__``
# (``deltanet.losses`` is ``deltanet.ops.losses``).
MODULES = (
    "deltanet.optim",
    "deltanet.schedules",
    "deltanet.data",
    "deltanet.zoo",
    "deltanet.binary",
    "deltanet.distributed",
    "deltanet.init",
    "deltanet.ops.losses",
    "deltanet.ops",
    "deltanet.train",
    "deltanet.io",
)


def _public(module: types.ModuleType) -> dict[str, object]:
    """The module's public functions and classes: its ``__all__``, or else the names without
    a leading underscore that the module (or a submodule of it) defines, not those it imports."""
    listed = getattr(module, "__all__", None)
    names = listed if listed is not None else [n for n in vars(module) if not n.startswith("_")]
    found = {}
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # modules, constants, type aliases
        if listed is None and not obj.__module__.startswith(module.__name__):
            continue
        found[f"{module.__name__}.{name}"] = obj
    return found


def public_names() -> dict[str, object]:
    """Every public function and class: ``deltanet.__all__`` and the public names of MODULES."""
    names = _public(deltanet)
    for name in MODULES:
        names.update(_public(importlib.import_module(name)))
    return names
