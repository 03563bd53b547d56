"""Callbacks of the fit loop: the Callback base, History, EarlyStopping, ModelCheckpoint,
CSVLogger, LearningRateScheduler (``ProgressBar`` is in ``deltanet.train.progress``).

A callback sees the loop through ``self.state`` (a ``TrainingState``, set by ``fit``) and may
stop it by setting ``self.state.stop_training = True``. Hooks, in order of a run:
``on_train_begin(logs)``, then per epoch ``on_epoch_begin(epoch)``, ``on_batch_end(step, logs)``
after every optimizer step, ``on_epoch_end(epoch, logs)``; finally ``on_train_end(logs)``.
Epochs are counted from 0 in the hooks, as in Keras. The epoch logs hold ``loss`` and
``accuracy`` (means over the epoch's examples), ``val_loss`` and ``val_accuracy`` (with
validation data), ``lr`` (of the epoch's last step), ``seconds`` (the whole epoch) and
``images_per_second`` (training examples over the training time, validation excluded).
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from deltanet.io import save
from deltanet.io.safetensors import atomic_write
from deltanet.train.state import TrainingState

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
]


class Callback:
    """Base class: every hook does nothing. ``self.state`` is the loop's ``TrainingState``."""

    state: TrainingState = None  # type: ignore[assignment]  # fit sets it before any hook
    # Runs on the primary process only (it writes files): rank 0 of a distributed fit.
    rank_zero_only: bool = False

    def set_state(self, state: TrainingState) -> None:
        """Give the callback the loop's ``TrainingState`` (``fit`` calls it before any hook)."""
        self.state = state

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Before the first epoch of ``fit`` (of a resumed run too); ``logs`` is empty."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Before epoch ``epoch`` (counted from 0) starts its batches."""

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        """After optimizer step ``step`` (counted from 0 over the run). ``logs``: ``batch``,
        ``size``, and the epoch's running ``loss``, ``accuracy``, ``lr``, ``images_per_second``."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """After epoch ``epoch`` (from 0) and its validation; ``logs`` as the module says."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """After the last epoch (or the one a callback stopped at); ``logs``: its epoch logs."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state a checkpoint keeps, so a resumed run behaves as an uninterrupted one."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned, from the checkpoint ``fit(resume_from=...)``
        continues (the base class keeps nothing)."""


class History(Callback):
    """Epoch logs as lists: ``history.history["loss"][i]`` belongs to epoch ``history.epoch[i]``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


def _resolve_mode(cls: str, monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f'{cls}: mode must be "auto", "min" or "max". Received: {mode!r}.')
    if mode == "auto":
        return "max" if "acc" in monitor or "top" in monitor else "min"
    return mode


def _improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (a non-finite never does)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_monitor(cls: str, monitor: str, state: TrainingState) -> None:
    if monitor not in state.log_keys:
        hint = (
            " Pass validation_data to fit or monitor 'loss'." if monitor.startswith("val_") else ""
        )
        raise ValueError(
            f"{cls}: monitor {monitor!r} is not in the epoch logs. "
            f"Available: {list(state.log_keys)}.{hint}"
        )


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Raises ValueError for a ``mode`` other than auto, min or max, a ``patience`` that is not an int
    >= 0, a ``min_delta`` < 0, or (when training starts) a ``monitor`` not in the epoch logs.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(
                f"EarlyStopping: patience must be an int >= 0. Received: {patience!r}."
            )
        if not isinstance(min_delta, (int, float)) or not 0 <= min_delta < math.inf:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0. Received: {min_delta!r}.")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode = _resolve_mode("EarlyStopping", monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        _check_monitor("EarlyStopping", self.monitor, self.state)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = float(logs[self.monitor])
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.state.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.state.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_weights is not None and self.best_epoch != self.state.epoch - 1:
            self.state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        # Best weights are not kept: after a resume they restore only from a new best epoch.
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.wait = int(state.get("wait", 0))


class ModelCheckpoint(Callback):
    """Save weights, optimizer state, RNG states, epoch and step after each epoch (atomically).

    ``path``: a directory, which receives ``best.safetensors`` (when ``monitor`` improves, if
    ``save_best``) and ``last.safetensors`` (every epoch, if ``save_last``); or a file ending in
    ``.safetensors``, written when ``monitor`` improves (``save_best``) or every epoch.
    ``fit(..., resume_from=...)`` continues from either file. In a distributed fit only
    rank 0 writes (every rank holds the same weights).

    Raises ValueError for ``save_best`` and ``save_last`` both False, a ``mode`` other than auto,
    min or max, or (when training starts) a ``monitor`` not in the epoch logs.
    """

    rank_zero_only = True

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = "val_loss",
        save_best: bool = True,
        save_last: bool = True,
        mode: str = "auto",
    ) -> None:
        path = os.fspath(path)
        if not save_best and not save_last:
            raise ValueError("ModelCheckpoint: save_best and save_last are both False.")
        self.monitor, self.mode = monitor, _resolve_mode("ModelCheckpoint", monitor, mode)
        self.save_best = save_best
        if path.endswith(".safetensors"):
            self.best_path = path if save_best else None
            self.last_path = None if save_best else path
        else:
            self.best_path = os.path.join(path, "best.safetensors") if save_best else None
            self.last_path = os.path.join(path, "last.safetensors") if save_last else None
        self.best: float | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.save_best:
            _check_monitor("ModelCheckpoint", self.monitor, self.state)
        for path in (self.best_path, self.last_path):
            if path is not None:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        improved = self.save_best and _improved(float(logs[self.monitor]), self.best, self.mode)
        if improved:
            self.best = float(logs[self.monitor])
        meta = None
        for path, due in ((self.best_path, improved), (self.last_path, True)):
            if path is not None and due:
                meta = meta or {**self.state.checkpoint_metadata(), "monitor": self.monitor}
                self._save(path, {**meta, "best": self.best})

    def _save(self, path: str, metadata: dict[str, Any]) -> None:
        save(self.state.model, path, optimizer=self.state.optimizer, metadata=metadata)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")


class CSVLogger(Callback):
    """One row per epoch (``epoch`` counted from 1, then the logs) after a header line.

    A new run starts the file again with its first row (a run that fails before it leaves an
    existing file as it was); ``append=True`` adds rows to an existing file instead. A resumed
    run rewrites the file (atomically) with the epochs its checkpoint holds, from the
    checkpoint's history, so rows of epochs the checkpoint does not hold (written after it, or
    after the checkpoint resumed from) are never kept twice. In a distributed fit only rank 0
    writes.
    """

    rank_zero_only = True

    def __init__(self, path: str | os.PathLike, append: bool = False) -> None:
        self.path, self.append = os.fspath(path), append
        self.keys: list[str] = []
        self._header_due = True  # the next row starts the file

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.keys = ["epoch", *self.state.log_keys]
        self._header_due = True
        if self.state.initial_epoch > 0:
            self._rewrite_from_history()
        elif self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                self.keys = next(csv.reader(f))  # keep the columns the file already has
            self._header_due = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        row = {"epoch": epoch + 1, **logs}
        if self._header_due:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # reopened per row: nothing left open
        with open(self.path, "w" if self._header_due else "a", newline="") as f:
            writer = csv.writer(f)
            if self._header_due:
                writer.writerow(self.keys)
            writer.writerow([_csv_value(row.get(k, "")) for k in self.keys])
        self._header_due = False

    def _rewrite_from_history(self) -> None:
        """The header and one row per epoch of the resumed checkpoint's history."""
        history = self.state.history
        epochs = list(history.epoch) if history is not None else []
        logs = history.history if history is not None else {}
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(self.keys)
        for i, epoch in enumerate(epochs):
            row = {"epoch": epoch + 1, **{k: v[i] for k, v in logs.items() if i < len(v)}}
            writer.writerow([_csv_value(row.get(k, "")) for k in self.keys])
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        data = text.getvalue().encode()
        atomic_write(self.path, lambda f: f.write(data))
        self._header_due = False


def _csv_value(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


class LearningRateScheduler(Callback):
    """Set ``optimizer.lr`` before each epoch to ``schedule(epoch, lr)`` or ``schedule(epoch)``.

    Raises TypeError when ``schedule`` is not callable.
    """

    def __init__(self, schedule: Callable[..., float]) -> None:
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: schedule must be callable. Received: {schedule!r}."
            )
        self.schedule = schedule
        self._takes_lr = _positional_arity(schedule) >= 2

    def on_epoch_begin(self, epoch: int) -> None:
        optimizer = self.state.optimizer
        lr = self.schedule(epoch, optimizer.lr) if self._takes_lr else self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not lr >= 0:
            raise ValueError(
                f"LearningRateScheduler: schedule({epoch}) must return a number >= 0. "
                f"Received: {lr!r}."
            )
        optimizer.lr = float(lr)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume fn(epoch)
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in kinds for p in params)
