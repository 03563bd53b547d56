"""fit: mini-batch training with callbacks, checkpoints and resume.

One step: ``optimizer.lr = schedule(step)`` (if a schedule is given), ``model.zero_grad()``,
``logits = model(xb)``, ``value, dlogits = loss(logits, yb)``,
``model.backward(dlogits, input_grad=False)``, ``optimizer.step()``. A non-finite loss, gradient
or parameter stops training with ``TrainingDiverged``; checkpoints written before stay as they
were.

Where the work runs is the strategy's business (``deltanet.train.strategy``): one process by
default; ``distributed=True`` (under ``mpiexec -n N``) is the short form of
``strategy=deltanet.distributed.MPIStrategy()``: every rank passes the same data and settings;
they are compared across ranks first (a clear error on every rank if they differ), rank 0's
weights are broadcast, each rank runs its shard of every global batch, the gradients are summed
over the ranks, and every rank takes the same step: N ranks reach the weights of one process
with the same batch size. Only rank 0 prints and runs the callbacks marked ``rank_zero_only``
(checkpoints, CSV logs). An exception on one rank during training aborts the whole job (MPI
Abort) instead of leaving the others waiting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deltanet.data import batches
from deltanet.data.augment import Compose, Transform, as_augment, augment_rng, check_augment
from deltanet.init import as_rng
from deltanet.io import FormatError, load_checkpoint
from deltanet.layers.base import Layer, mode
from deltanet.ops.losses import LossFn, resolve_loss
from deltanet.train.callbacks import Callback, History, ModelCheckpoint
from deltanet.train.divergence import diverged, diverged_at, finite, first_bad_parameter
from deltanet.train.evaluate import check_int, check_xy, evaluate_batches
from deltanet.train.progress import ProgressBar
from deltanet.train.select import select_strategy
from deltanet.train.state import TrainingState
from deltanet.train.strategy import Strategy

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
    strategy: Strategy | None = None,
    augment: str | Sequence[Transform] | Compose | None = None,
) -> History:
    """Train ``model`` on ``train_data = (x (N, ...), y (N,))`` for ``epochs`` epochs.

    Returns the History (``history.history["loss"]``, ...). ``optimizer`` updates this model's
    parameters (all, or some: the others stay fixed); one holding another model's is refused,
    before anything runs. ``seed`` seeds the shuffling Generator: the same seed and model give
    bit-identical weights. ``resume_from``: a
    checkpoint of ``ModelCheckpoint``; training continues after its epoch as if never stopped.
    ``distributed``: data-parallel over the MPI ranks (module docstring); ``batch_size`` is the
    global batch. ``sync_batch_norm``: batch norm with the statistics of the global batch
    instead of each rank's shard, during the training steps (``deltanet.distributed.
    SyncBatchNorm``); after ``fit`` the model holds its own layers again. ``strategy``: a
    ``deltanet.train.strategy.Strategy`` instead of the two flags. ``augment``: transforms
    applied to each training batch (never to ``validation_data``), as a spec like
    ``"crop4,flip"`` or a list (``deltanet.data.augment``); checked against the examples' shape
    before training (ValueError). They draw from a Generator of their own, derived from
    ``seed``, whose state checkpoints carry: runs stay bit-identical under a seed and across
    ``resume_from``, and a run without augmentation shuffles exactly as before.

    Raises, before anything runs: TypeError for a model, optimizer, loss, schedule or data of the
    wrong kind; ValueError for values out of range or data that does not fit the model (each naming
    the argument); FileNotFoundError or FormatError for a ``resume_from`` that is missing or not a
    checkpoint. During training: ``TrainingDiverged`` when the loss or a gradient becomes non-
    finite, naming the epoch, the batch and the first layer where it did.
    """
    strategy = select_strategy("fit", strategy, distributed, sync_batch_norm)
    try:
        state, data, val, loss_fn, bar = _prepare(
            model, loss, optimizer, train_data, validation_data, epochs, batch_size,
            schedule, callbacks, seed, verbose, resume_from, strategy.is_primary, augment,
        )  # fmt: skip
    except Exception as err:
        strategy.setup_failed(err)
        raise
    settings = {"loss": loss, "seed": seed, "shuffle": shuffle, "resume_from": resume_from,
                "augment": state.augment.spec if state.augment else None}  # fmt: skip
    strategy.start(state, data, val, settings)
    try:
        with mode(model, True):
            _train(state, strategy, data, val, loss_fn, schedule, shuffle)
    except Exception as err:
        strategy.on_error(err)
        raise
    finally:
        bar.close()
    return state.history


def _prepare(model, loss, optimizer, train_data, validation_data, epochs, batch_size,
             schedule, callbacks, seed, verbose, resume_from, primary, augment):  # fmt: skip
    """Checked arguments, the loop's state (resumed if asked) and the progress bar."""
    loss_fn, (x, y), val = _check_fit_args(model, loss, optimizer, train_data, validation_data)
    transforms = as_augment("fit", augment)
    check_augment(transforms, x.shape[1:])
    epochs = check_int("fit", "epochs", epochs, 0)
    batch_size = check_int("fit", "batch_size", batch_size, 1)
    if schedule is not None and not callable(schedule):
        raise TypeError(f"fit: schedule must be callable step -> lr. Received: {schedule!r}.")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2. Received: {verbose!r}.")
    history, bar, ordered = _arrange_callbacks(callbacks, verbose, primary)
    state = TrainingState(
        model=model,
        optimizer=optimizer,
        rng=as_rng(seed),
        augment=transforms if len(transforms) else None,
        augment_rng=augment_rng(seed) if len(transforms) else None,
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
    _check_optimizer_params(model, optimizer)
    loss_fn = resolve_loss(loss)
    train = _check_pair("fit", train_data, "train_data")
    val = None if val_data is None else _check_pair("fit", val_data, "validation_data")
    return loss_fn, train, val


def _check_optimizer_params(model: Layer, optimizer: Any) -> None:
    """The optimizer must update this model's parameters (compared by identity), no others.

    A subset is allowed (the parameters it does not hold stay fixed), but not none of them.
    """
    held = getattr(optimizer, "params", None)
    if held is None:  # a duck-typed optimizer that does not list its parameters
        return
    own = {id(p): name for name, p in model.named_parameters()}
    foreign = sum(id(p) not in own for p in held)
    shared = len(held) - foreign
    if foreign:
        raise ValueError(
            f"fit: {foreign} of the optimizer's {len(held)} parameters are not this model's "
            f"(it holds {shared} of the model's {len(own)}): it was built for another model"
            f"{' (in part)' if shared else ''}, and its steps would not train this one. Build it "
            f"from this model: {type(optimizer).__name__}(model.parameters(), ...)."
        )
    if own and not shared:
        raise ValueError(
            f"fit: the optimizer holds none of the model's {len(own)} parameters: training "
            f"would change nothing. Build it from this model: "
            f"{type(optimizer).__name__}(model.parameters(), ...)."
        )


def _arrange_callbacks(
    callbacks: Any, verbose: int, primary: bool = True
) -> tuple[History, ProgressBar, list[Callback]]:
    """History first, checkpoints after the other callbacks (so they save their latest
    state), the progress bar last; a History or ProgressBar the caller gave is used as is.
    Off the primary process (rank 0) of a distributed run: no progress bar and no
    ``rank_zero_only`` callbacks."""
    user = list(callbacks or ())
    for cb in user:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"fit: every callback must be a deltanet.train.callbacks.Callback. "
                f"Received: {type(cb).__name__}."
            )
    if not primary:
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


def _train(state: TrainingState, strategy: Strategy, data, val, loss_fn, schedule, shuffle):
    callbacks = _callbacks(state)
    for cb in callbacks:
        cb.on_train_begin({})
    logs: dict[str, Any] = {}
    for epoch in range(state.epoch, state.epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        start = time.perf_counter()
        with strategy.epoch(state.model):
            logs = _train_epoch(state, strategy, data, loss_fn, schedule, shuffle, epoch)
        strategy.end_epoch(state.model)
        train_seconds = time.perf_counter() - start
        if val is not None:
            xv, yv = val
            scores = evaluate_batches(
                state.model, loss_fn, xv, yv, max(state.batch_size, 256), strategy
            )
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        logs["lr"] = float(state.optimizer.lr)
        logs["seconds"] = time.perf_counter() - start
        logs["images_per_second"] = state.num_examples / max(train_seconds, 1e-9)
        state.epoch = epoch + 1
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        state.stop_training = strategy.should_stop(state.stop_training)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(logs)


def _callbacks(state: TrainingState) -> list[Callback]:
    return state.callbacks  # type: ignore[return-value]  # fit put Callbacks there


def _train_epoch(state: TrainingState, strategy, data, loss_fn, schedule, shuffle, epoch) -> dict:
    """One pass over the data; returns ``{"loss", "accuracy"}`` (means over the examples)."""
    x, y = data
    total, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for batch, (xb, yb) in enumerate(
        batches(x, y, state.batch_size, shuffle=shuffle, rng=state.rng)
    ):
        assert yb is not None  # fit's data always has its labels (check_xy)
        if state.augment is not None:  # the global batch: every MPI rank augments it alike
            xb = _augmented(state, xb)
        value, right = _train_step(state, strategy, xb, yb, loss_fn, schedule, (epoch, batch))
        n = len(yb)
        seen += n
        total += value * n
        correct += right
        elapsed = max(time.perf_counter() - start, 1e-9)
        batch_logs = {"batch": batch, "size": n, "loss": total / seen, "accuracy": correct / seen}
        batch_logs.update(lr=float(state.optimizer.lr), images_per_second=seen / elapsed)
        for cb in _callbacks(state):
            cb.on_batch_end(state.step - 1, batch_logs)
    return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}


def _augmented(state: TrainingState, xb: np.ndarray) -> np.ndarray:
    """The training batch through ``state.augment``; its shape and dtype must be kept."""
    assert state.augment is not None and state.augment_rng is not None
    out = state.augment(xb, state.augment_rng)
    if not isinstance(out, np.ndarray) or out.shape != xb.shape or out.dtype != xb.dtype:
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(
            f"fit: augment {state.augment.spec!r} must return an array of the batch's shape and "
            f"dtype, {xb.shape} {xb.dtype}. Received: {got}."
        )
    return out


def _train_step(state: TrainingState, strategy, xb, yb, loss_fn, schedule, where):
    """One optimizer step on the global batch; returns its mean loss and its correct count."""
    model, optimizer = state.model, state.optimizer
    if schedule is not None:
        optimizer.lr = float(schedule(state.step))
    model.zero_grad()
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are checked below
        value, correct, (xb, yb) = strategy.step(model, xb, yb, loss_fn)
        problem = None
        if not np.isfinite(value):
            problem = f"the loss is {value}"
        elif not all(finite(p.grad) for p in model.parameters()):
            problem = "a gradient is non-finite"
        if problem is not None:  # decided from reduced values: every process raises it
            with strategy.local(model):
                raise diverged(state, xb, yb, loss_fn, where, problem)
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
