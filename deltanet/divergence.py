"""Training that went NaN or infinite: the error, and where in the model it started.

On a non-finite loss or gradient the fit loop re-runs the batch layer by layer (looking inside
nested Sequentials): the first layer whose output is non-finite, or else, going down from the
top, the first whose gradient is, is named in the error with its index path and label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deltanet.layers.base import Layer
from deltanet.layers.sequential import Sequential

if TYPE_CHECKING:
    from deltanet.training_state import TrainingState

Where = tuple[int, int]  # (epoch, batch), both counted from 0


class TrainingDiverged(RuntimeError):
    """A loss, gradient or parameter went NaN or infinite during ``fit``.

    ``epoch`` and ``batch`` count from 1 (as the message shows); ``step`` is the iteration
    (optimizer steps taken before it); ``layer`` is the layer's index path (``"2"``, or ``"1.0"``
    inside a nested Sequential) or None, ``layer_label`` its label.
    """

    def __init__(
        self, message: str, *, epoch: int, batch: int, step: int, layer: str | None, label: str
    ) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step
        self.layer, self.layer_label = layer, label


def leaf_layers(model: Layer, prefix: str = "") -> list[tuple[str, Layer]]:
    """``(index_path, layer)`` in forward order, looking inside (nested) Sequentials."""
    if not isinstance(model, Sequential):
        return [(prefix or "model", model)]
    out = []
    for i, layer in enumerate(model.layers):
        out += leaf_layers(layer, f"{prefix}.{i}" if prefix else str(i))
    return out


def finite(a: np.ndarray) -> bool:
    """Whether every value is finite (no NaN, no infinity)."""
    return bool(np.isfinite(a).all())


def first_bad_parameter(model: Layer) -> tuple[str, Layer, str] | None:
    """``(path, layer, parameter_name)`` of the first non-finite parameter, or None."""
    for path, layer in leaf_layers(model):
        for name, p in layer.named_parameters():
            if not finite(p.data):
                return path, layer, name
    return None


def diverged(
    state: TrainingState, xb: np.ndarray, yb: np.ndarray, loss_fn: Any, where: Where, what: str
) -> TrainingDiverged:
    """Re-run the batch layer by layer to find where the first non-finite value appears."""
    try:
        with np.errstate(all="ignore"):
            found = _locate_nonfinite(state.model, xb, yb, loss_fn)
    except Exception as err:  # the diagnosis must never hide the divergence itself
        found = None, None, f"(could not re-run the batch: {err})"
    path, layer, kind = found
    return diverged_at(state, where, what, path, layer, kind)


def _locate_nonfinite(model: Layer, xb, yb, loss_fn) -> tuple[str | None, Layer | None, str]:
    leaves = leaf_layers(model)
    h = xb
    for path, layer in leaves:
        h = layer(h)
        if not finite(h):
            return path, layer, "output of"
    value, dy = loss_fn(h, yb)
    if not (np.isfinite(value) and finite(dy)):
        return None, None, "the loss itself (every layer's output is finite)"
    model.zero_grad()
    for path, layer in reversed(leaves):  # the first non-finite gradient, from the top down
        dy = layer.backward(dy)
        bad = [name for name, p in layer.named_parameters() if not finite(p.grad)]
        if bad or not finite(dy):
            return path, layer, f"gradient ({', '.join(bad) or 'input'}) of"
    return None, None, "nothing on re-running the batch (a non-deterministic layer?)"


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
