"""Argument and input checks that every layer shares, with errors in one grammar.

Each check names the layer (``where``: ``"Conv2D(in_channels=3)"``, or the layer itself), says
what was expected and what was received, as Keras does:
``Conv2D(in_channels=3): expected input of shape (N, 3, H, W). Received: (8, 1, 28, 28).``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from deltanet.ops.window import as_tuple, resolve_padding


class Layer(Protocol):
    """What these checks need of a layer: its name for the message (``Layer.label()``)."""

    def label(self) -> str: ...


SPATIAL_NAMES = {0: (), 1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def positive_int(where: str, name: str, value: Any) -> int:
    """``value`` as an int >= 1; TypeError for non-ints (bools included), ValueError below 1."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a positive int. Received: {value!r}.")
    if value < 1:
        raise ValueError(f"{where}: {name} must be a positive int. Received: {value!r}.")
    return int(value)


def int_tuple(where: str, name: str, value: Any, ndim: int, low: int) -> tuple[int, ...]:
    """``as_tuple(value, ndim)`` with the layer named in its errors, and every entry ``>= low``."""
    try:
        values = as_tuple(value, ndim, name)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None
    if min(values) < low:
        kind = "positive" if low > 0 else "non-negative"
        raise ValueError(f"{where}: {name} must be {kind}. Received: {value!r}.")
    return values


def float_dtype(where: str, dtype: Any) -> np.dtype:
    """``dtype`` as a floating-point ``np.dtype``; a TypeError naming the layer otherwise."""
    try:
        result = None if dtype is None else np.dtype(dtype)  # np.dtype(None) would be float64
    except TypeError:
        result = None
    if result is None or not np.issubdtype(result, np.floating):
        raise TypeError(
            f"{where}: dtype must be a floating-point type (float32 or float64). "
            f"Received: {dtype!r}."
        )
    return result


def flag(where: str, name: str, value: Any) -> bool:
    """A bool (NumPy's included) as a Python bool; TypeError otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False. Received: {value!r}.")
    return bool(value)


def number(where: str, name: str, value: Any) -> float:
    """A finite real ``value`` as a Python float (so that float32 inputs stay float32)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{where}: {name} must be a number. Received: {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite. Received: {value!r}.")
    return float(value)


def conv_padding(
    where: str,
    padding: Any,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> str | tuple:
    """``"valid"``/``"same"``, a tuple of ints (symmetric) or a tuple of ``(lo, hi)`` pairs."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(
                f"{where}: padding must be an int, a tuple, 'valid' or 'same'. "
                f"Received: {padding!r}."
            )
        return padding
    try:
        ones = (1,) * len(kernel_size)
        pairs = resolve_padding(padding, ones, tuple(kernel_size), tuple(stride), tuple(dilation))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None
    if all(lo == hi for lo, hi in pairs):
        return tuple(lo for lo, _ in pairs)
    return tuple(tuple(p) for p in pairs)


def check_float_input(layer: Layer, x: Any) -> np.ndarray:
    """``x`` must be a floating-point ``numpy.ndarray``; otherwise a TypeError naming the layer."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{layer.label()}: expected a numpy.ndarray of floats. Received: {type(x).__name__}."
        )
    if x.dtype.kind != "f":  # float16/32/64 (np.issubdtype says the same, ten times slower)
        raise TypeError(
            f"{layer.label()}: expected a floating-point array (float32 or float64). "
            f"Received dtype: {x.dtype}."
        )
    return x


def check_input(layer: Layer, x: Any, spatial_dims: int, channels: int | None) -> np.ndarray:
    """Validate a channels-first input ``(N, C, *spatial)`` of ``spatial_dims`` spatial axes."""
    x = check_float_input(layer, x)
    c = "C" if channels is None else str(channels)
    expected = "(N, " + ", ".join((c, *SPATIAL_NAMES[spatial_dims])) + ")"
    if x.ndim != 2 + spatial_dims or (channels is not None and x.shape[1] != channels):
        raise ValueError(
            f"{layer.label()}: expected input of shape {expected}. Received: {x.shape}."
        )
    return x


def check_weight_dtype(layer: Layer, x: np.ndarray, weight_dtype: np.dtype) -> None:
    """The input's dtype must be the weight's (no silent up- or down-casting)."""
    if x.dtype != weight_dtype:
        raise TypeError(
            f"{layer.label()}: input dtype {x.dtype} does not match the weight dtype "
            f"{weight_dtype}. Build the layer with dtype=np.{x.dtype} or pass "
            f"x.astype(np.{weight_dtype})."
        )


def check_state_shape(layer: Layer, name: str, held: np.ndarray, value: Any) -> np.ndarray:
    """``value``, loaded into ``held`` (a parameter or buffer), as an array of ``held``'s shape."""
    new = np.asarray(value)
    if new.shape != held.shape:
        raise ValueError(
            f"{layer.label()}: {name} must have shape {held.shape}. Received: {new.shape}."
        )
    return new
