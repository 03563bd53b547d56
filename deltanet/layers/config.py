"""Layers to and from plain JSON-able dicts: ``{"class": "Conv2D", "config": {...}}``.

Only the layer classes that ``deltanet.layers`` exports (and the packed inference layers of
``deltanet.binary``) can be built from a dict, so a config read from a file can never name an
arbitrary class.
"""

from __future__ import annotations

from typing import Any

from deltanet.layers.base import Layer


def known_layers() -> dict[str, type[Layer]]:
    """Class name -> class for every layer ``deltanet.layers`` exports, and the packed layers."""
    import deltanet.layers as layers
    from deltanet.binary.layers import PackedConv, PackedDense

    out = {}
    for name in layers.__all__:
        obj = getattr(layers, name)
        if isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer:
            out[name] = obj
    out.update(PackedConv=PackedConv, PackedDense=PackedDense)
    return out


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_dict(item: Any) -> Layer:
    """Rebuild a layer from ``layer_to_dict``'s output; ValueError on anything unexpected."""
    if not isinstance(item, dict) or not isinstance(item.get("class"), str):
        raise ValueError(
            f"a layer entry must be {{'class': str, 'config': dict}}. Received: {item!r}."
        )
    classes = known_layers()
    cls = classes.get(item["class"])
    if cls is None:
        raise ValueError(
            f"unknown layer type {item['class']!r}. Known types: {', '.join(sorted(classes))}."
        )
    config = item.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{item['class']}: config must be a dict. Received: {config!r}.")
    try:
        return cls.from_config(config)
    except TypeError as err:
        raise ValueError(f"{item['class']}: invalid config {config!r}: {err}") from err
