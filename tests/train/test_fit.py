"""fit: learning, determinism, schedules, modes, resume, the progress display, bad input."""

from __future__ import annotations

import io as stdio
import os

import numpy as np
import pytest

from deltanet import io
from deltanet.layers import Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU, Sequential
from deltanet.optim import SGD, Adam
from deltanet.train import Callback, CSVLogger, ModelCheckpoint, evaluate, fit, predict
from deltanet.train.progress import ProgressBar
from deltanet.train.strategy import LocalStrategy, Strategy
from tests.train.common import VAL_KEYS, assert_same_weights, blobs, mlp, weights


class ModeSpy(Layer):
    """Identity that records the training flag of each forward pass."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def _forward(self, x):
        self.modes.append(self.training)
        return x, None

    def _backward(self, dy, cache, input_grad):
        return dy


# --- learning, history, evaluate, predict ---------------------------------------------------


def test_fit_learns_and_returns_history():
    x, y = blobs()
    xv, yv = blobs(40, seed=1)
    model = mlp()
    hist = fit(model, "cross_entropy", Adam(model, lr=0.02), (x, y), epochs=6, batch_size=16,
               validation_data=(xv, yv), verbose=0)  # fmt: skip
    assert hist.epoch == list(range(6))
    keys = {*VAL_KEYS, "seconds", "images_per_second"}
    assert set(hist.history) == keys and all(len(v) == 6 for v in hist.history.values())
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= 0.9
    assert hist.history["lr"] == [0.02] * 6 and min(hist.history["images_per_second"]) > 0
    scores = evaluate(model, "cross_entropy", xv, yv)
    assert scores["loss"] == pytest.approx(hist.history["val_loss"][-1])
    assert scores["accuracy"] == hist.history["val_accuracy"][-1]
    assert set(scores) == {"loss", "accuracy"}  # top5 only with more than 5 classes


def test_epoch_loss_is_the_mean_over_examples():
    x, y = blobs(50)  # batches of 16, 16, 16, 2: a plain mean of batch losses would differ
    model = mlp()
    seen = []

    class Spy(Callback):
        def on_batch_end(self, step, logs):
            seen.append((logs["size"], logs["loss"]))

    hist = fit(model, "cross_entropy", SGD(model, lr=0.0), (x, y), batch_size=16,
               callbacks=[Spy()], verbose=0)  # fmt: skip
    # lr 0: the weights never move, so the epoch loss is the loss of the whole data set
    assert hist.history["loss"][0] == pytest.approx(evaluate(model, "cross_entropy", x, y)["loss"])
    assert [n for n, _ in seen] == [16, 16, 16, 2]


@pytest.mark.parametrize("loss", ["sigmoid_cross_entropy", "mse"])
def test_named_losses_take_integer_labels(loss):
    x, y = blobs()
    model = mlp()
    hist = fit(model, loss, Adam(model, lr=0.02), (x, y), epochs=4, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_tiny_conv_model_trains_in_float32():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32) * 0.3
    x[y == 1, :, :3, :] += 1.0  # class 1 is bright on top
    model = Sequential(Conv2D(1, 3, 3, padding=1, rng=0), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(27, 2, rng=1))  # fmt: skip
    hist = fit(model, "cross_entropy", Adam(model, lr=0.02), (x, y), epochs=5, batch_size=16,
               verbose=0)  # fmt: skip
    assert hist.history["accuracy"][-1] >= 0.9
    assert all(p.data.dtype == np.float32 for p in model.parameters())


# --- determinism, schedules, modes ----------------------------------------------------------


def test_same_seed_gives_bit_identical_weights():
    x, y = blobs()
    runs = []
    for seed in (3, 3, 4):
        model = mlp(dropout=0.3)
        fit(model, "cross_entropy", Adam(model, lr=0.01), (x, y), epochs=3, batch_size=16,
            seed=seed, verbose=0)  # fmt: skip
        runs.append(model)
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(weights(runs[0])[0], weights(runs[2])[0])


def test_no_shuffle_does_not_depend_on_seed():
    x, y = blobs()
    a, b = mlp(), mlp()
    for model, seed in ((a, 0), (b, 1)):
        fit(model, "cross_entropy", SGD(model, lr=0.1), (x, y), epochs=2, shuffle=False,
            seed=seed, verbose=0)  # fmt: skip
    assert_same_weights(a, b)


def test_schedule_sets_lr_before_every_step():
    x, y = blobs(50)
    model = mlp()
    seen = []

    class Spy(Callback):
        def on_batch_end(self, step, logs):
            seen.append((step, logs["lr"]))

    def schedule(it):
        return 0.1 / (1 + it)

    hist = fit(model, "cross_entropy", SGD(model, lr=5.0), (x, y), epochs=2, batch_size=16,
               schedule=schedule, callbacks=[Spy()], verbose=0)  # fmt: skip
    assert [s for s, _ in seen] == list(range(8))
    assert all(lr == schedule(s) for s, lr in seen)
    assert hist.history["lr"] == [schedule(3), schedule(7)]


def test_train_mode_for_training_eval_for_validation_and_restored():
    x, y = blobs(32)
    spy = ModeSpy()
    inner = Sequential(Dense(6, 4, rng=0), spy)
    model = Sequential(inner, Dropout(0.5, rng=1))
    model.eval()
    inner.layers[0].training = True  # a mixed state must come back as it was
    fit(model, "cross_entropy", SGD(model), (x, y), epochs=1, batch_size=16,
        validation_data=(x, y), verbose=0)  # fmt: skip
    assert spy.modes[:2] == [True, True] and spy.modes[2:] == [False]
    assert [m.training for m in (model, inner, inner.layers[0], spy)] == [False, False, True, False]
    model.train()
    predict(model, x)
    evaluate(model, "cross_entropy", x, y)
    assert spy.modes[-2:] == [False, False] and model.training and spy.training


# --- checkpoints and resume -----------------------------------------------------------------


def _train_with_checkpoints(model, opt, directory, epochs, resume_from=None):
    x, y = blobs()
    xv, yv = blobs(40, seed=1)
    callbacks = [ModelCheckpoint(directory), CSVLogger(os.path.join(directory, "history.csv"))]
    return fit(model, "cross_entropy", opt, (x, y), epochs=epochs, batch_size=16,
               validation_data=(xv, yv), callbacks=callbacks, seed=7, verbose=0,
               resume_from=resume_from)  # fmt: skip


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = mlp(dropout=0.3)
    hist_full = _train_with_checkpoints(full, Adam(full, lr=0.01), str(tmp_path / "a"), 4)
    first = mlp(dropout=0.3)
    _train_with_checkpoints(first, Adam(first, lr=0.01), str(tmp_path / "b"), 2)
    # a fresh process: a differently initialised model and a fresh optimizer
    fresh = mlp(seed=10, dropout=0.3)
    last = str(tmp_path / "b" / "last.safetensors")
    hist = _train_with_checkpoints(fresh, Adam(fresh, lr=0.5), str(tmp_path / "b"), 4, last)
    assert_same_weights(full, fresh)
    assert hist.epoch == hist_full.epoch == [0, 1, 2, 3]
    for key in VAL_KEYS:
        assert hist.history[key] == hist_full.history[key], key
    rows = (tmp_path / "b" / "history.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("epoch,loss,accuracy")
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    ckpt = io.load_checkpoint(last)
    assert ckpt.metadata["epoch"] == 4 and ckpt.metadata["step"] == 4 * 8
    expected = io.load_checkpoint(str(tmp_path / "a" / "last.safetensors")).optimizer_state
    for name, value in expected.items():
        np.testing.assert_array_equal(ckpt.optimizer_state[name], value, err_msg=name)


def _snapshot(directory):
    return {p: open(os.path.join(directory, p), "rb").read() for p in sorted(os.listdir(directory))}


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "model_only", "no_meta"])
def test_resume_from_bad_file_fails_before_anything_changes(tmp_path, case):
    d = str(tmp_path)
    model = mlp()
    opt = SGD(model, lr=0.1)
    _train_with_checkpoints(model, opt, d, 1)
    bad = os.path.join(d, "bad.safetensors")
    raw = open(os.path.join(d, "last.safetensors"), "rb").read()
    if case == "garbage":
        open(bad, "wb").write(b"\x07" * 64)
    elif case == "truncated":
        open(bad, "wb").write(raw[: len(raw) // 2])
    elif case == "model_only":
        io.save(model, bad)
    elif case == "no_meta":
        io.save(model, bad, optimizer=opt)
    before, w = _snapshot(d), weights(model)
    error = FileNotFoundError if case == "missing" else io.FormatError
    with pytest.raises(error, match="bad.safetensors"):
        _train_with_checkpoints(model, opt, d, 3, resume_from=bad)
    assert _snapshot(d) == before
    for a, b in zip(w, weights(model)):
        np.testing.assert_array_equal(a, b)


def test_resume_into_a_different_model_is_refused(tmp_path):
    model = mlp()
    _train_with_checkpoints(model, SGD(model), str(tmp_path), 1)
    other = Sequential(Dense(6, 8, rng=0), ReLU(), Dense(8, 4, rng=1))
    w = weights(other)
    with pytest.raises(ValueError, match="does not match"):
        _train_with_checkpoints(other, SGD(other), str(tmp_path), 2,
                                str(tmp_path / "last.safetensors"))  # fmt: skip
    for a, b in zip(w, weights(other)):
        np.testing.assert_array_equal(a, b)


# --- progress display -----------------------------------------------------------------------


class FakeTerminal(stdio.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal_and_silence_at_verbose_0(capsys):
    x, y = blobs(32)
    model = mlp()
    fit(model, "cross_entropy", SGD(model), (x, y), epochs=2, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("Epoch 2/2 - loss ")
    assert "acc " in out[0] and "lr 1.00e-02" in out[0] and "img/s" in out[0]
    fit(model, "cross_entropy", SGD(model), (x, y), epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_tqdm_bar_on_a_terminal():
    x, y = blobs(32)
    model = mlp()
    term = FakeTerminal()
    fit(model, "cross_entropy", SGD(model), (x, y), epochs=2, batch_size=8,
        callbacks=[ProgressBar(1, stream=term)])  # fmt: skip
    text = term.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "4/4" in text
    assert "loss" in text and "acc" in text and "img/s" in text and "lr" in text


# --- bad input ------------------------------------------------------------------------------


def _bad_fit(**change):
    x, y = blobs(8)
    model = mlp()
    args = {"model": model, "loss": "cross_entropy", "optimizer": SGD(model),
            "train_data": (x, y), "verbose": 0}  # fmt: skip
    args.update(change)
    fit(args.pop("model"), args.pop("loss"), args.pop("optimizer"), args.pop("train_data"), **args)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"train_data": blobs(8)[0]}, TypeError, "fit: train_data must be a tuple"),
        ({"train_data": (blobs(8)[0].astype(int), blobs(8)[1])}, TypeError, "fit: train_data x"),
        ({"train_data": (np.zeros(8, np.float32), blobs(8)[1])}, ValueError, r"shape \(N, ...\)"),
        ({"train_data": (blobs(8)[0], blobs(8)[1][:5])}, ValueError, r"fit: train_data.*\(8,\)"),
        ({"train_data": (np.full((8, 6), np.nan, np.float32), blobs(8)[1])}, ValueError, "finite"),
        ({"validation_data": (blobs(4)[0], blobs(3)[1])}, ValueError, "fit: validation_data"),
        ({"batch_size": 0}, ValueError, "fit: batch_size must be >= 1. Received: 0"),
        ({"batch_size": 2.5}, TypeError, "fit: batch_size must be an int"),
        ({"epochs": -1}, ValueError, "fit: epochs must be >= 0"),
        ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'. Valid names: cross_entropy"),
        ({"model": "mlp"}, TypeError, "fit: model must be a deltanet Layer"),
        ({"optimizer": None}, TypeError, "fit: optimizer"),
        ({"callbacks": [print]}, TypeError, "fit: every callback"),
        ({"verbose": 3}, ValueError, "fit: verbose"),
    ],
)
def test_fit_rejects_bad_input_before_training(change, error, match):
    with pytest.raises(error, match=match):
        _bad_fit(**change)


# --- strategies -----------------------------------------------------------------------------


class Recording(LocalStrategy):
    """One process, recording the hooks fit calls; stops after the first epoch."""

    def __init__(self):
        self.calls = []

    def start(self, state, data, val, settings):
        self.calls.append(("start", sorted(settings)))

    def epoch(self, model):
        self.calls.append("epoch")
        return super().epoch(model)

    def step(self, model, xb, yb, loss_fn):
        self.calls.append("step")
        return super().step(model, xb, yb, loss_fn)

    def end_epoch(self, model):
        self.calls.append("end_epoch")

    def shard(self, n):
        self.calls.append("shard")
        return super().shard(n)

    def should_stop(self, stop):
        self.calls.append("should_stop")
        return True


def test_fit_runs_its_work_through_the_strategy():
    x, y = blobs(32)
    a, b = mlp(), mlp()
    strategy = Recording()
    fit(a, "cross_entropy", SGD(a), (x, y), epochs=3, batch_size=16, validation_data=(x, y),
        strategy=strategy, verbose=0)  # fmt: skip
    keys = ["augment", "loss", "resume_from", "seed", "shuffle"]
    assert strategy.calls == [("start", keys), "epoch", "step", "step", "end_epoch", "shard",
                              "should_stop"]  # fmt: skip
    fit(b, "cross_entropy", SGD(b), (x, y), epochs=1, batch_size=16, verbose=0)
    assert_same_weights(a, b)  # the local strategy's step is the default one


def test_setup_failure_and_training_errors_reach_the_strategy():
    seen = []

    class Watching(LocalStrategy):
        def setup_failed(self, err):
            seen.append(("setup", type(err).__name__))

        def on_error(self, err):
            seen.append(("training", type(err).__name__))

    class Boom(Callback):
        def on_batch_end(self, step, logs):
            raise RuntimeError("boom")

    x, y = blobs(8)
    model = mlp()
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, "cross_entropy", SGD(model), (x, y), batch_size=0, strategy=Watching())
    with pytest.raises(RuntimeError, match="boom"):
        fit(model, "cross_entropy", SGD(model), (x, y), callbacks=[Boom()], verbose=0,
            strategy=Watching())  # fmt: skip
    assert seen == [("setup", "ValueError"), ("training", "RuntimeError")]


def test_strategy_arguments_are_checked():
    x, y = blobs(8)
    model = mlp()
    with pytest.raises(TypeError, match="fit: strategy must be a deltanet.train.strategy"):
        fit(model, "cross_entropy", SGD(model), (x, y), strategy="mpi")
    with pytest.raises(ValueError, match="pass either strategy or distributed"):
        fit(model, "cross_entropy", SGD(model), (x, y), strategy=Strategy(), distributed=True)
    with pytest.raises(TypeError, match="fit: sync_batch_norm must be a bool"):
        fit(model, "cross_entropy", SGD(model), (x, y), sync_batch_norm=1)
