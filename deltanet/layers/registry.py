"""The registry of layer classes that model files may name, and layers to and from dicts.

A model file stores its architecture as ``{"class": "Conv2D", "config": {...}}`` entries. Only a
class registered with ``@register_layer`` (every built-in layer is, and your own can be, as
Keras' ``register_keras_serializable``) can be named there, so a file can never make ``load``
build an arbitrary class::

    @deltanet.register_layer
    class Residual(deltanet.Layer):
        def __init__(self, channels: int) -> None: ...
        def get_config(self) -> dict: return {"channels": self.channels}

``save`` refuses a model holding an unregistered class before it writes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from deltanet.layers.base import Layer

L = TypeVar("L", bound=type[Layer])

_REGISTRY: dict[str, type[Layer]] = {}


@overload
def register_layer(cls: L, *, name: str | None = None) -> L: ...
@overload
def register_layer(cls: None = None, *, name: str | None = None) -> Callable[[L], L]: ...


def register_layer(cls: Any = None, *, name: str | None = None) -> Any:
    """Class decorator: let model files name ``cls`` (under ``name``, default the class name).

    Registering another class under a name already taken is an error; registering the same
    class again (a module reloaded, a notebook cell run twice) replaces the entry.

    Raises TypeError when ``cls`` is not a ``Layer`` subclass, ValueError for a ``name`` that is not
    an identifier or that another class holds.
    """

    def decorate(klass: Any) -> Any:
        if not (isinstance(klass, type) and issubclass(klass, Layer)):
            raise TypeError(
                f"register_layer: expected a subclass of deltanet.Layer. Received: {klass!r}."
            )
        key = klass.__name__ if name is None else name
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"register_layer: name must be an identifier. Received: {key!r}.")
        old = _REGISTRY.get(key)
        if old is not None and _qualified(old) != _qualified(klass):
            raise ValueError(
                f"register_layer: the name {key!r} is taken by {_qualified(old)}. "
                f"Register {_qualified(klass)} under another name: "
                "@register_layer(name='...')."
            )
        _REGISTRY[key] = klass
        klass._registered_name = key  # type: ignore[attr-defined]
        return klass

    return decorate if cls is None else decorate(cls)


def registered_layers() -> dict[str, type[Layer]]:
    """Name -> class for every registered layer (a copy)."""
    return dict(_REGISTRY)


def registered_name(layer: Layer) -> str:
    """The name ``layer``'s class is registered under; a TypeError that says how to register."""
    cls = type(layer)
    key = cls.__dict__.get("_registered_name")  # a subclass does not inherit its parent's entry
    if key is None or _REGISTRY.get(key) is not cls:
        raise TypeError(
            f"{cls.__name__} is not a registered layer, so a saved model could not be rebuilt. "
            f"Decorate the class with @deltanet.register_layer, give it get_config() returning "
            f"the arguments of its __init__, and import its module before deltanet.load."
        )
    return key


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    """``{"class": name, "config": layer.get_config()}`` for a registered layer.

    Raises TypeError for a layer whose class is not registered (``@register_layer``).
    """
    return {"class": registered_name(layer), "config": layer.get_config()}


def layer_from_dict(item: Any) -> Layer:
    """Rebuild a layer from ``layer_to_dict``'s output; ValueError on anything unexpected."""
    if not isinstance(item, dict) or not isinstance(item.get("class"), str):
        raise ValueError(
            f"a layer entry must be {{'class': str, 'config': dict}}. Received: {item!r}."
        )
    cls = _REGISTRY.get(item["class"])
    if cls is None:
        raise ValueError(
            f"unknown layer type {item['class']!r}. If it is a layer of your own, import the "
            "module that defines it (decorated with @deltanet.register_layer) before loading. "
            f"Known types: {', '.join(sorted(_REGISTRY))}."
        )
    config = item.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{item['class']}: config must be a dict. Received: {config!r}.")
    try:
        return cls.from_config(config)
    except TypeError as err:
        raise ValueError(f"{item['class']}: invalid config {config!r}: {err}") from err


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
