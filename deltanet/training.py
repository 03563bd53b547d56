"""fit: mini-batch training with callbacks, checkpoints and resume (evaluate, predict too).

One step: ``optimizer.lr = schedule(step)`` (if a schedule is given), ``model.zero_grad()``,
``logits = model(xb)``, ``value, dlogits = loss(logits, yb)``, ``model.backward(dlogits)``,
``optimizer.step()``. A non-finite loss, gradient or parameter stops training with
``TrainingDiverged``; checkpoints written before stay as they were.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deltanet.callbacks import Callback, History, ModelCheckpoint, TrainingState
from deltanet.data import batches
from deltanet.divergence import (
    TrainingDiverged,
    diverged,
    diverged_at,
    finite,
    first_bad_parameter,
)
from deltanet.evaluation import (
    LOSSES,
    LossFn,
    check_int,
    check_xy,
    evaluate,
    evaluate_batches,
    mode,
    predict,
    resolve_loss,
)
from deltanet.init import as_rng
from deltanet.io import FormatError, load_checkpoint
from deltanet.layers.base import Layer
from deltanet.metrics import predicted_classes
from deltanet.progress import ProgressBar

__all__ = ["LOSSES", "TrainingDiverged", "evaluate", "fit", "predict", "resolve_loss"]

# --- input validation -----------------------------------------------------------------------


def _check_pair(where: str, data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"{where}: {what} must be a tuple (x, y). Received: {type(data).__name__}"
            + (f" of length {len(data)}." if isinstance(data, (tuple, list)) else ".")
        )
    return check_xy(where, data[0], data[1], what)


# --- fit ------------------------------------------------------------------------------------


def fit(
    model: Layer,
    loss: str | LossFn,
    optimizer: Any,
    train_data: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    schedule: Callable[[int], float] | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int | np.random.Generator = 0,
    shuffle: bool = True,
    verbose: int = 1,
    resume_from: str | os.PathLike | None = None,
) -> History:
    """Train ``model`` on ``train_data = (x (N, ...), y (N,))`` for ``epochs`` epochs.

    Returns the History (``history.history["loss"]``, ...). ``seed`` seeds the shuffling
    Generator: the same seed and model give bit-identical weights. ``resume_from``: a
    checkpoint of ``ModelCheckpoint``; training continues after its epoch as if never stopped.
    """
    loss_fn, (x, y), val = _check_fit_args(model, loss, optimizer, train_data, validation_data)
    epochs = check_int("fit", "epochs", epochs, 0)
    batch_size = check_int("fit", "batch_size", batch_size, 1)
    if schedule is not None and not callable(schedule):
        raise TypeError(f"fit: schedule must be callable step -> lr. Received: {schedule!r}.")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2. Received: {verbose!r}.")
    history, bar, ordered = _arrange_callbacks(callbacks, verbose)
    state = TrainingState(
        model=model,
        optimizer=optimizer,
        rng=as_rng(seed),
        epochs=epochs,
        batch_size=batch_size,
        num_examples=len(x),
        steps_per_epoch=-(-len(x) // batch_size),
        log_keys=_log_keys(val is not None),
        history=history,
        callbacks=ordered,
    )
    if resume_from is not None:
        _resume(state, resume_from)  # everything is checked before any file is written
    else:
        history.history, history.epoch = {}, []
    for cb in ordered:
        cb.set_state(state)
    try:
        with mode(model, True):
            _train(state, (x, y), val, loss_fn, schedule, shuffle)
    finally:
        bar.close()
    return history


def _check_fit_args(model: Any, loss: Any, optimizer: Any, train_data: Any, val_data: Any):
    """The loss callable, the training pair and the validation pair (or None), all checked."""
    if not isinstance(model, Layer):
        raise TypeError(f"fit: model must be a deltanet Layer. Received: {type(model).__name__}.")
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "lr"):
        raise TypeError(f"fit: optimizer must be a deltanet Optimizer. Received: {optimizer!r}.")
    loss_fn = resolve_loss(loss)
    train = _check_pair("fit", train_data, "train_data")
    val = None if val_data is None else _check_pair("fit", val_data, "validation_data")
    return loss_fn, train, val


def _arrange_callbacks(callbacks: Any, verbose: int) -> tuple[History, ProgressBar, list]:
    """History first, checkpoints after the other callbacks (so they save their latest
    state), the progress bar last; a History or ProgressBar the caller gave is used as is."""
    user = list(callbacks or ())
    for cb in user:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"fit: every callback must be a deltanet.callbacks.Callback. "
                f"Received: {type(cb).__name__}."
            )
    history = next((cb for cb in user if isinstance(cb, History)), None) or History()
    bar = next((cb for cb in user if isinstance(cb, ProgressBar)), None) or ProgressBar(verbose)
    rest = [cb for cb in user if cb is not history and cb is not bar]
    ordered = [history, *(cb for cb in rest if not isinstance(cb, ModelCheckpoint))]
    ordered += [cb for cb in rest if isinstance(cb, ModelCheckpoint)] + [bar]
    return history, bar, ordered


def _log_keys(validation: bool) -> tuple[str, ...]:
    val = ("val_loss", "val_accuracy") if validation else ()
    return ("loss", "accuracy", *val, "lr", "seconds", "images_per_second")


def _train(state: TrainingState, data, val, loss_fn: LossFn, schedule, shuffle: bool) -> None:
    callbacks = state.callbacks
    for cb in callbacks:
        cb.on_train_begin({})
    logs: dict[str, Any] = {}
    for epoch in range(state.epoch, state.epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        start = time.perf_counter()
        logs = _train_epoch(state, data, loss_fn, schedule, shuffle, epoch)
        train_seconds = time.perf_counter() - start
        if val is not None:
            scores = evaluate_batches(state.model, loss_fn, *val, max(state.batch_size, 256))
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        logs["lr"] = float(state.optimizer.lr)
        logs["seconds"] = time.perf_counter() - start
        logs["images_per_second"] = state.num_examples / max(train_seconds, 1e-9)
        state.epoch = epoch + 1
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(logs)


def _train_epoch(state: TrainingState, data, loss_fn, schedule, shuffle, epoch: int) -> dict:
    """One pass over the data; returns ``{"loss", "accuracy"}`` (means over the examples)."""
    x, y = data
    total, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for batch, (xb, yb) in enumerate(
        batches(x, y, state.batch_size, shuffle=shuffle, rng=state.rng)
    ):
        value, logits = _train_step(state, xb, yb, loss_fn, schedule, (epoch, batch))
        n = len(yb)
        seen += n
        total += value * n
        correct += int(np.count_nonzero(predicted_classes(logits) == yb))
        elapsed = max(time.perf_counter() - start, 1e-9)
        batch_logs = {"batch": batch, "size": n, "loss": total / seen, "accuracy": correct / seen}
        batch_logs.update(lr=float(state.optimizer.lr), images_per_second=seen / elapsed)
        for cb in state.callbacks:
            cb.on_batch_end(state.step - 1, batch_logs)
    return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}


def _train_step(state: TrainingState, xb, yb, loss_fn, schedule, where) -> tuple[float, Any]:
    model, optimizer = state.model, state.optimizer
    if schedule is not None:
        optimizer.lr = float(schedule(state.step))
    model.zero_grad()
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked below
        logits = model(xb)
        value, dlogits = loss_fn(logits, yb)
        value = float(value)
        if not np.isfinite(value):
            raise diverged(state, xb, yb, loss_fn, where, f"the loss is {value}")
        model.backward(dlogits)
        if not all(finite(p.grad) for p in model.parameters()):
            raise diverged(state, xb, yb, loss_fn, where, "a gradient is non-finite")
        optimizer.step()
    bad = first_bad_parameter(model)
    if bad is not None:
        path, layer, name = bad
        raise diverged_at(
            state,
            where,
            f"the optimizer step made {name} non-finite (learning rate {optimizer.lr:g})",
            path,
            layer,
            f"parameter {name} of",
        )
    state.step += 1
    return value, logits


# --- resume ---------------------------------------------------------------------------------


def _resume(state: TrainingState, path: str | os.PathLike) -> None:
    """Load weights, optimizer state, RNG states, epoch, step and history from a checkpoint."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise FileNotFoundError(f"fit: resume_from: no checkpoint file at {where!r}.")
    ckpt = load_checkpoint(where)
    if ckpt.optimizer_state is None:
        raise FormatError(f"fit: resume_from {where!r} holds no optimizer state.")
    try:
        state.check_metadata(ckpt.metadata)
    except ValueError as err:
        raise FormatError(f"fit: resume_from {where!r}: {err}") from err
    backup = {k: v.copy() for k, v in state.model.state_dict().items()}
    try:
        state.model.load_state_dict(ckpt.model.state_dict())
        state.optimizer.load_state_dict(ckpt.optimizer_state)
    except (ValueError, TypeError) as err:
        state.model.load_state_dict(backup)
        raise ValueError(
            f"fit: resume_from {where!r} does not match this model and optimizer: {err}"
        ) from err
    state.restore(ckpt.metadata)
