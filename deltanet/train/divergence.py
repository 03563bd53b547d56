"""Training that went NaN or infinite: the error, and where in the model it started.

On a non-finite loss or gradient the fit loop re-runs the batch with every layer of the tree
watched: the first layer whose output is non-finite (in the order the outputs are computed, so
the innermost layer of a block comes before the block), or else, going down from the loss, the
first whose gradient is, is named in the error with its dotted name (``"2"``, ``"1.block.0"``)
and label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from deltanet.layers.base import Layer
from deltanet.train.state import TrainingState

Where = tuple[int, int]  # (epoch, batch), both counted from 0
Found = tuple[str | None, Layer | None, str]  # (dotted name, layer, what was non-finite)


class TrainingDiverged(RuntimeError):
    """A loss, gradient or parameter went NaN or infinite during ``fit``.

    ``epoch`` and ``batch`` count from 1 (as the message shows); ``step`` is the iteration
    (optimizer steps taken before it); ``layer`` is the layer's dotted name in the layer tree
    (``"2"``, ``"1.0"`` inside a nested Sequential, ``"1.block.0"`` inside a Residual; ``"model"``
    for the model itself) or None, ``layer_label`` its label.
    """

    def __init__(
        self, message: str, *, epoch: int, batch: int, step: int, layer: str | None, label: str
    ) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step
        self.layer, self.layer_label = layer, label


def finite(a: np.ndarray) -> bool:
    """Whether every value is finite (no NaN, no infinity)."""
    return bool(np.isfinite(a).all())


def _display(name: str) -> str:
    return name or "model"


def first_bad_parameter(model: Layer) -> tuple[str, Layer, str] | None:
    """``(layer name, layer, parameter name)`` of the first non-finite parameter, or None."""
    for name, p in model.named_parameters():
        if not finite(p.data):
            path, _, attr = name.rpartition(".")  # the layers by name only once one is found
            return _display(path), dict(model.named_layers())[path], attr
    return None


def diverged(
    state: TrainingState, xb: np.ndarray, yb: np.ndarray, loss_fn: Any, where: Where, what: str
) -> TrainingDiverged:
    """Re-run the batch with every layer watched to find where the first non-finite value is."""
    try:
        with np.errstate(all="ignore"):
            found = _locate_nonfinite(state.model, xb, yb, loss_fn)
    except Exception as err:  # the diagnosis must never hide the divergence itself
        found = None, None, f"(could not re-run the batch: {err})"
    path, layer, kind = found
    return diverged_at(state, where, what, path, layer, kind)


def _locate_nonfinite(model: Layer, xb, yb, loss_fn) -> Found:
    """One forward and one backward pass of the whole model, each layer's results checked."""
    outputs: list[Found] = []  # non-finite results, in the order the layers finish them
    grads: list[Found] = []

    def check_output(name: str, layer: Layer, y: Any) -> None:
        if not finite(y):
            outputs.append((name, layer, "output of"))

    def check_gradient(name: str, layer: Layer, dx: Any) -> None:
        bad = [n for n, p in layer.named_parameters() if not finite(p.grad)]
        if bad or (dx is not None and not finite(dx)):
            grads.append((name, layer, f"gradient ({', '.join(bad) or 'input'}) of"))

    model.zero_grad()
    with _watched(model, "forward", check_output):
        h = model(xb)
    if outputs:
        return outputs[0]
    value, dy = loss_fn(h, yb)
    if not (np.isfinite(value) and finite(dy)):
        return None, None, "the loss itself (every layer's output is finite)"
    with _watched(model, "backward", check_gradient):
        model.backward(dy)
    if grads:
        return grads[0]
    return None, None, "nothing on re-running the batch (a non-deterministic layer?)"


@contextmanager
def _watched(model: Layer, method: str, check: Callable[[str, Layer, Any], None]) -> Iterator[None]:
    """Call ``check(name, layer, result)`` after ``layer.<method>`` of every layer of the tree.

    The watch is an instance attribute that shadows the class's method, removed afterwards.
    """
    layers = list(model.named_layers())
    for name, layer in layers:
        original = getattr(layer, method)

        def watch(*args: Any, _f=original, _name=name, _layer=layer, **kwargs: Any) -> Any:
            result = _f(*args, **kwargs)
            check(_display(_name), _layer, result)
            return result

        object.__setattr__(layer, method, watch)
    try:
        yield
    finally:
        for _, layer in layers:
            object.__delattr__(layer, method)


def diverged_at(
    state: TrainingState, where: Where, what: str, path: str | None, layer: Layer | None, kind: str
) -> TrainingDiverged:
    """The error for ``what`` at ``where``, naming ``kind`` (e.g. "output of") ``layer``."""
    epoch, batch = where
    label = layer.label() if layer is not None else ""
    place = f"{kind} layer {path} {label}" if layer is not None else kind
    message = (
        f"fit: training diverged at epoch {epoch + 1}/{state.epochs}, batch {batch + 1}/"
        f"{state.steps_per_epoch} (iteration {state.step}): {what}. First non-finite: {place}. "
        f"Lower the learning rate (now {state.optimizer.lr:g}) or check the data; "
        "checkpoints already written are unchanged."
    )
    return TrainingDiverged(
        message, epoch=epoch + 1, batch=batch + 1, step=state.step, layer=path, label=label
    )
