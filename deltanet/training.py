"""fit: mini-batch training with callbacks, checkpoints and resume (evaluate, predict too).

One step: ``optimizer.lr = schedule(step)`` (if a schedule is given), ``model.zero_grad()``,
``logits = model(xb)``, ``value, dlogits = loss(logits, yb)``, ``model.backward(dlogits)``,
``optimizer.step()``. A non-finite loss, gradient or parameter stops training with
``TrainingDiverged``; checkpoints written before stay as they were.

``distributed=True`` (under ``mpiexec -n N``): every rank passes the same data and settings;
they are compared across ranks first (a clear error on every rank if they differ), rank 0's
weights are broadcast, each rank runs its shard of every global batch, the gradients are summed
over the ranks (``deltanet.distributed``), and every rank takes the same step: N ranks reach
the weights of one process with the same batch size. Only rank 0 prints and runs the
callbacks marked ``rank_zero_only`` (checkpoints, CSV logs). An exception on one rank during
training aborts the whole job (MPI Abort) instead of leaving the others waiting.
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
from deltanet.layers.sequential import backward_parameters
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
    distributed: bool = False,
    sync_batch_norm: bool = False,
) -> History:
    """Train ``model`` on ``train_data = (x (N, ...), y (N,))`` for ``epochs`` epochs.

    Returns the History (``history.history["loss"]``, ...). ``seed`` seeds the shuffling
    Generator: the same seed and model give bit-identical weights. ``resume_from``: a
    checkpoint of ``ModelCheckpoint``; training continues after its epoch as if never stopped.
    ``distributed``: data-parallel over the MPI ranks (module docstring); ``batch_size`` is the
    global batch. ``sync_batch_norm``: batch norm with the statistics of the global batch
    instead of each rank's shard (see ``deltanet.layers.norm``).
    """
    dist = _distributed(distributed, sync_batch_norm)  # None or deltanet.distributed_fit
    try:
        state, data, val, loss_fn, bar = _prepare(
            model, loss, optimizer, train_data, validation_data, epochs, batch_size,
            schedule, callbacks, seed, verbose, resume_from, dist is None or dist.rank() == 0,
        )  # fmt: skip
    except Exception as err:
        if dist is not None:
            dist.setup_failed(err)  # raises on every rank, naming the rank that failed
        raise
    if dist is not None:  # the ranks agree (or all raise), then start from rank 0's weights
        dist.start(state, data, val, (loss, seed, shuffle, resume_from, sync_batch_norm))
    try:
        with mode(model, True):
            _train(state, data, val, loss_fn, schedule, shuffle, sync_batch_norm)
    except TrainingDiverged:
        raise  # decided from reduced values: every rank raises it together
    except Exception as err:
        if dist is None:
            raise
        dist.abort(f"fit failed: {type(err).__name__}: {err}")
    finally:
        bar.close()
    return state.history


def _distributed(distributed: Any, sync_batch_norm: Any) -> Any:
    for key, flag in (("distributed", distributed), ("sync_batch_norm", sync_batch_norm)):
        if not isinstance(flag, bool):
            raise TypeError(f"fit: {key} must be a bool. Received: {key}={flag!r}.")
    if sync_batch_norm and not distributed:
        raise ValueError("fit: sync_batch_norm=True needs distributed=True.")
    return dfit() if distributed else None


def _prepare(model, loss, optimizer, train_data, validation_data, epochs, batch_size,
             schedule, callbacks, seed, verbose, resume_from, rank_zero):  # fmt: skip
    """Checked arguments, the loop's state (resumed if asked) and the progress bar."""
    loss_fn, (x, y), val = _check_fit_args(model, loss, optimizer, train_data, validation_data)
    epochs = check_int("fit", "epochs", epochs, 0)
    batch_size = check_int("fit", "batch_size", batch_size, 1)
    if schedule is not None and not callable(schedule):
        raise TypeError(f"fit: schedule must be callable step -> lr. Received: {schedule!r}.")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2. Received: {verbose!r}.")
    history, bar, ordered = _arrange_callbacks(callbacks, verbose, rank_zero)
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
    return state, (x, y), val, loss_fn, bar


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


def _arrange_callbacks(
    callbacks: Any, verbose: int, rank_zero: bool = True
) -> tuple[History, ProgressBar, list]:
    """History first, checkpoints after the other callbacks (so they save their latest
    state), the progress bar last; a History or ProgressBar the caller gave is used as is.
    Off rank 0 of a distributed run: no progress bar and no ``rank_zero_only`` callbacks."""
    user = list(callbacks or ())
    for cb in user:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"fit: every callback must be a deltanet.callbacks.Callback. "
                f"Received: {type(cb).__name__}."
            )
    if not rank_zero:
        user = [cb for cb in user if not (cb.rank_zero_only or isinstance(cb, ProgressBar))]
        verbose = 0
    history = next((cb for cb in user if isinstance(cb, History)), None) or History()
    bar = next((cb for cb in user if isinstance(cb, ProgressBar)), None) or ProgressBar(verbose)
    rest = [cb for cb in user if cb is not history and cb is not bar]
    ordered = [history, *(cb for cb in rest if not isinstance(cb, ModelCheckpoint))]
    ordered += [cb for cb in rest if isinstance(cb, ModelCheckpoint)] + [bar]
    return history, bar, ordered


def _log_keys(validation: bool) -> tuple[str, ...]:
    val = ("val_loss", "val_accuracy") if validation else ()
    return ("loss", "accuracy", *val, "lr", "seconds", "images_per_second")


def _train(state: TrainingState, data, val, loss_fn: LossFn, schedule, shuffle, sync_bn) -> None:
    callbacks = state.callbacks
    for cb in callbacks:
        cb.on_train_begin({})
    logs: dict[str, Any] = {}
    for epoch in range(state.epoch, state.epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        start = time.perf_counter()
        logs = _train_epoch(state, data, loss_fn, schedule, shuffle, epoch, sync_bn)
        if state.distributed and not sync_bn:  # each rank tracked its shard's statistics
            dfit().average_buffers(state.model)
        train_seconds = time.perf_counter() - start
        if val is not None:
            scores = evaluate_batches(
                state.model, loss_fn, *val, max(state.batch_size, 256),
                distributed=state.distributed,
            )  # fmt: skip
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        logs["lr"] = float(state.optimizer.lr)
        logs["seconds"] = time.perf_counter() - start
        logs["images_per_second"] = state.num_examples / max(train_seconds, 1e-9)
        state.epoch = epoch + 1
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if state.stop_training if not state.distributed else dfit().should_stop(state):
            break
    for cb in callbacks:
        cb.on_train_end(logs)


def dfit() -> Any:
    """``deltanet.distributed_fit``: imported by distributed runs only; needs mpi4py."""
    from deltanet import distributed_fit

    distributed_fit.dist.require()
    return distributed_fit


def _train_epoch(state: TrainingState, data, loss_fn, schedule, shuffle, epoch, sync_bn) -> dict:
    """One pass over the data; returns ``{"loss", "accuracy"}`` (means over the examples)."""
    if sync_bn:
        with dfit().synchronised_batch_norm(state.model, True):
            return _train_epoch(state, data, loss_fn, schedule, shuffle, epoch, False)
    x, y = data
    total, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for batch, (xb, yb) in enumerate(
        batches(x, y, state.batch_size, shuffle=shuffle, rng=state.rng)
    ):
        value, right = _train_step(state, xb, yb, loss_fn, schedule, (epoch, batch))
        n = len(yb)
        seen += n
        total += value * n
        correct += right
        elapsed = max(time.perf_counter() - start, 1e-9)
        batch_logs = {"batch": batch, "size": n, "loss": total / seen, "accuracy": correct / seen}
        batch_logs.update(lr=float(state.optimizer.lr), images_per_second=seen / elapsed)
        for cb in state.callbacks:
            cb.on_batch_end(state.step - 1, batch_logs)
    return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}


def _train_step(state: TrainingState, xb, yb, loss_fn, schedule, where) -> tuple[float, int]:
    """One optimizer step on the global batch; returns its mean loss and its correct count."""
    model, optimizer = state.model, state.optimizer
    if schedule is not None:
        optimizer.lr = float(schedule(state.step))
    model.zero_grad()
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked below
        if state.distributed:
            value, correct, (xb, yb) = dfit().sharded_pass(state, xb, yb, loss_fn)
        else:
            logits = model(xb)
            value, dlogits = loss_fn(logits, yb)
            correct = int(np.count_nonzero(predicted_classes(logits) == yb))
        value = float(value)
        if not np.isfinite(value):
            raise diverged(state, xb, yb, loss_fn, where, f"the loss is {value}")
        if not state.distributed:
            backward_parameters(model, dlogits)
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
    return value, correct


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
