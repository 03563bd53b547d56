"""Callbacks one by one (driven with synthetic logs) and inside fit."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from deltanet import io
from deltanet.layers import Dense, Dropout, ReLU, Sequential
from deltanet.optim import SGD, Adam
from deltanet.train import fit
from deltanet.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
)
from deltanet.train.progress import ProgressBar
from deltanet.train.state import TrainingState

KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_second")


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.eye(3, 5)[y] * 2 + rng.standard_normal((n, 5)) * 0.5
    return x.astype(np.float32), y


def model(seed=0, dropout=False):
    extra = [Dropout(0.2, rng=seed + 5)] if dropout else []
    return Sequential(Dense(5, 8, rng=seed), ReLU(), *extra, Dense(8, 3, rng=seed + 1))


def drive(callback, values, monitor="val_loss", m=None):
    """Run ``callback`` through epochs whose ``monitor`` takes ``values``; returns the state."""
    m = m or model()
    state = TrainingState(model=m, optimizer=SGD(m), rng=np.random.default_rng(0), epochs=10,
                          batch_size=8, num_examples=48, steps_per_epoch=6, log_keys=KEYS,
                          callbacks=[callback])  # fmt: skip
    callback.set_state(state)
    callback.on_train_begin({})
    for epoch, value in enumerate(values):
        state.epoch = epoch + 1
        callback.on_epoch_end(epoch, {k: 0.5 for k in KEYS} | {monitor: value})
        if state.stop_training:
            break
    callback.on_train_end({})
    return state


# --- EarlyStopping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, values, stop_epoch",
    [
        ({"patience": 2}, [1.0, 0.9, 0.95, 0.92, 0.5], 3),
        ({"patience": 0}, [1.0, 1.1, 0.5], 1),
        ({"patience": 2, "min_delta": 0.2}, [1.0, 0.9, 0.85, 0.1], 2),
        ({"patience": 1, "monitor": "val_accuracy"}, [0.5, 0.6, 0.55, 0.9], 2),  # auto: max
        ({"patience": 1, "mode": "max"}, [0.5, 0.6, 0.55, 0.9], 2),
        ({"patience": 3}, [1.0, 0.9, 0.8, 0.7, 0.6], None),
        ({"patience": 1}, [1.0, float("nan"), 0.5], 1),  # NaN never improves
    ],
)
def test_early_stopping_stops_at_the_right_epoch(kwargs, values, stop_epoch):
    cb = EarlyStopping(**kwargs)
    state = drive(cb, values, monitor=kwargs.get("monitor", "val_loss"))
    assert cb.stopped_epoch == stop_epoch
    assert state.stop_training == (stop_epoch is not None)


def test_early_stopping_restores_best_weights():
    m = model()
    cb = EarlyStopping(patience=1, restore_best_weights=True)
    state = TrainingState(model=m, optimizer=SGD(m), rng=np.random.default_rng(0), epochs=5,
                          batch_size=8, num_examples=48, steps_per_epoch=6,
                          log_keys=KEYS)  # fmt: skip
    cb.set_state(state)
    cb.on_train_begin({})
    snapshots = []
    for epoch, value in enumerate([1.0, 0.5, 0.7, 0.8]):
        m.layers[0].weight.data += 1.0  # "training" changes the weights each epoch
        snapshots.append(m.layers[0].weight.data.copy())
        state.epoch = epoch + 1
        cb.on_epoch_end(epoch, {"val_loss": value})
        if state.stop_training:
            break
    cb.on_train_end({})
    assert cb.best_epoch == 1 and cb.stopped_epoch == 2
    np.testing.assert_array_equal(m.layers[0].weight.data, snapshots[1])


def test_early_stopping_inside_fit():
    x, y = data()
    m = model()
    # lr 0: the loss never improves, so training stops after patience + 1 epochs
    hist = fit(m, "cross_entropy", SGD(m, lr=0.0), (x, y), epochs=20, verbose=0,
               callbacks=[EarlyStopping(monitor="loss", patience=2)])  # fmt: skip
    assert hist.epoch == [0, 1, 2]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: EarlyStopping(patience=-1), "patience"),
        (lambda: EarlyStopping(min_delta=-0.1), "min_delta"),
        (lambda: EarlyStopping(mode="up"), "mode"),
        (lambda: ModelCheckpoint("d", save_best=False, save_last=False), "both False"),
        (lambda: ModelCheckpoint("d", mode="lowest"), "mode"),
        (lambda: LearningRateScheduler(0.1), "callable"),
        (lambda: ProgressBar(verbose=5), "verbose"),
    ],
)
def test_bad_constructor_args(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_missing_monitor_fails_before_training(tmp_path):
    x, y = data()
    m = model()
    w = m.layers[0].weight.data.copy()
    for cb in (EarlyStopping(), ModelCheckpoint(tmp_path)):
        with pytest.raises(ValueError, match=r"monitor 'val_loss' is not in the epoch logs.*"):
            fit(m, "cross_entropy", SGD(m), (x, y), callbacks=[cb], verbose=0)
    np.testing.assert_array_equal(m.layers[0].weight.data, w)
    assert os.listdir(tmp_path) == []


# --- ModelCheckpoint ------------------------------------------------------------------------


def test_model_checkpoint_best_and_last(tmp_path):
    cb = ModelCheckpoint(tmp_path / "ckpt")
    drive(cb, [1.0, 0.5, 0.7])
    best = io.load_checkpoint(tmp_path / "ckpt" / "best.safetensors")
    last = io.load_checkpoint(tmp_path / "ckpt" / "last.safetensors")
    assert best.metadata["epoch"] == 2 and last.metadata["epoch"] == 3
    assert best.metadata["best"] == last.metadata["best"] == 0.5
    assert last.metadata["monitor"] == "val_loss"
    assert best.optimizer_config["name"] == "sgd" and best.optimizer_state is not None
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["best.safetensors", "last.safetensors"]


@pytest.mark.parametrize("save_best, written", [(True, 2), (False, 3)])
def test_model_checkpoint_single_file(tmp_path, save_best, written):
    path = tmp_path / "model.safetensors"
    cb = ModelCheckpoint(path, save_best=save_best)
    drive(cb, [1.0, 0.5, 0.7])
    assert io.load_checkpoint(path).metadata["epoch"] == written
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_checkpoint_metadata_holds_everything_to_resume(tmp_path):
    x, y = data()
    m = model(dropout=True)
    stopper = EarlyStopping(monitor="loss", patience=50)
    fit(m, "cross_entropy", Adam(m), (x, y), epochs=2, batch_size=16, seed=3, verbose=0,
        callbacks=[ModelCheckpoint(tmp_path, save_best=False), stopper])  # fmt: skip
    meta = io.load_checkpoint(tmp_path / "last.safetensors").metadata
    assert meta["epoch"] == 2 and meta["step"] == 6
    assert meta["rng_state"]["bit_generator"] == "PCG64"
    assert list(meta["layer_rng_states"]) == ["2:rng"]
    assert meta["history"]["epoch"] == [0, 1] and len(meta["history"]["logs"]["loss"]) == 2
    # the checkpoint runs after the other callbacks, so it saw the stopper's latest state
    assert meta["callbacks"]["EarlyStopping"] == stopper.state_dict()
    saved = meta["callbacks"]["EarlyStopping"]
    assert saved["best_epoch"] == 1 or saved["wait"] == 1  # updated by epoch 1, not only 0


def test_callback_states_round_trip_with_repeated_classes():
    m = model()
    a, b = EarlyStopping(patience=4), EarlyStopping(monitor="loss", patience=4)
    state = drive(a, [1.0, 0.8, 0.9])
    drive(b, [2.0, 1.0, 0.5, 0.7], monitor="loss")
    state.callbacks = [a, b]
    meta = state.checkpoint_metadata()
    assert set(meta["callbacks"]) == {"EarlyStopping", "EarlyStopping#1"}
    a2, b2 = EarlyStopping(patience=4), EarlyStopping(monitor="loss", patience=4)
    fresh = TrainingState(model=m, optimizer=SGD(m), rng=np.random.default_rng(1), epochs=10,
                          batch_size=8, num_examples=48, steps_per_epoch=6, log_keys=KEYS,
                          callbacks=[a2, b2])  # fmt: skip
    fresh.restore(meta)
    assert a2.state_dict() == a.state_dict() and b2.state_dict() == b.state_dict()
    assert fresh.epoch == fresh.initial_epoch == state.epoch
    assert fresh.rng.bit_generator.state == state.rng.bit_generator.state


@pytest.mark.parametrize(
    "change",
    [
        {"training_format": 99},
        {"epoch": -1},
        {"step": "3"},
        {"rng_state": {"bit_generator": "PCG64", "state": "oops"}},
        {"history": {"epoch": [], "logs": {"loss": 1.0}}},
        {"layer_rng_states": {"0:rng": {}}},
        {"callbacks": {"EarlyStopping": 3}},
    ],
)
def test_malformed_training_metadata_is_a_format_error(change):
    m = model()
    state = TrainingState(model=m, optimizer=SGD(m), rng=np.random.default_rng(0), epochs=2,
                          batch_size=8, num_examples=48, steps_per_epoch=6,
                          log_keys=KEYS)  # fmt: skip
    meta = state.checkpoint_metadata() | change
    before = state.rng.bit_generator.state
    with pytest.raises(io.FormatError):
        state.restore(meta)
    assert state.rng.bit_generator.state == before and state.epoch == 0


# --- CSVLogger, LearningRateScheduler, History ----------------------------------------------


def test_csv_logger_header_rows_and_append(tmp_path):
    path = tmp_path / "logs" / "history.csv"
    drive(CSVLogger(path), [1.0, 0.5])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", *KEYS]
    assert [r[0] for r in rows[1:]] == ["1", "2"] and float(rows[2][3]) == 0.5
    drive(CSVLogger(path, append=True), [0.25])
    rows = list(csv.reader(open(path)))
    assert len(rows) == 4 and rows[3][3] == "0.25"
    drive(CSVLogger(path), [0.1])  # a new run starts the file again
    assert len(list(csv.reader(open(path)))) == 2


@pytest.mark.parametrize("two_args", [False, True])
def test_learning_rate_scheduler(two_args):
    x, y = data()
    m = model()
    if two_args:
        sched = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
        expected = [0.05, 0.025, 0.0125]
    else:
        sched = LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))
        expected = [0.1, 0.2, 0.30000000000000004]
    hist = fit(m, "cross_entropy", SGD(m, lr=0.1), (x, y), epochs=3, callbacks=[sched], verbose=0)
    assert hist.history["lr"] == pytest.approx(expected)


def test_learning_rate_scheduler_rejects_bad_values():
    x, y = data()
    m = model()
    with pytest.raises(ValueError, match=r"schedule\(0\) must return a number >= 0"):
        fit(m, "cross_entropy", SGD(m), (x, y),
            callbacks=[LearningRateScheduler(lambda e: -1.0)], verbose=0)  # fmt: skip


def test_user_history_and_hook_order():
    x, y = data()
    m = model()
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_end(self, step, logs):
            calls.append(f"batch {step}")

        def on_epoch_end(self, epoch, logs):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    hist = History()
    out = fit(m, "cross_entropy", SGD(m), (x, y), epochs=2, batch_size=24,
              callbacks=[Recorder(), hist], verbose=0)  # fmt: skip
    assert out is hist and hist.epoch == [0, 1]
    logs = sorted(k for k in KEYS if not k.startswith("val_"))
    assert calls == ["train_begin", "epoch_begin 0", "batch 0", "batch 1",
                     f"epoch_end 0 {logs}", "epoch_begin 1", "batch 2", "batch 3",
                     f"epoch_end 1 {logs}", "train_end"]  # fmt: skip


def test_callback_can_stop_training():
    x, y = data()
    m = model()

    class StopAfterOne(Callback):
        def on_epoch_end(self, epoch, logs):
            self.state.stop_training = True

    hist = fit(m, "cross_entropy", SGD(m), (x, y), epochs=5, callbacks=[StopAfterOne()], verbose=0)
    assert hist.epoch == [0]
