"""A training run started from the page: ``deltanet train`` in a thread, watched live.

The run is the CLI's own (``run_train`` with the parsed ``train`` arguments), so its directory
holds what ``deltanet train`` writes. A ``LiveView`` callback turns the run into events for the
page: per-batch loss and accuracy with the mean |δ| that each layer received, per-epoch
validation, and the first layer's filters as they change. Stop asks fit to end after the
current epoch, so the run finishes as a shorter run does: evaluated, saved, plotted.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from deltanet.train.callbacks import Callback

# Policies the page offers, with parameters that fit a run of any length (Caffe's LeNet
# solver's inv); step, multistep and sigmoid count iterations, which the page does not ask.
POLICY_PARAMS: dict[str, dict[str, float]] = {
    "cosine": {},
    "fixed": {},
    "poly": {"power": 1.0},
    "inv": {"gamma": 1e-4, "power": 0.75},
    "exp": {"gamma": 0.999},
}
# Per-example shapes of the datasets that work offline (checked by the tests against the
# loaders), so the page can list each one's models without loading it.
DATASET_SHAPES: dict[str, tuple[int, ...]] = {
    "digits": (1, 8, 8),
    "mnist1d": (1, 40),
    "volumes": (1, 16, 16, 16),
    "mnist": (1, 28, 28),
}
LIMITS = {"epochs": (1, 200), "batch_size": (1, 1024)}
FILTER_EVERY_S = 0.25  # at most four filter images a second: each is up to 64 small arrays
MAX_FILTERS = 64


def available_datasets() -> list[str]:
    """The datasets a run can use here: the generated ones, and MNIST when its files are."""
    from deltanet.data import data_root

    names = ["digits", "mnist1d", "volumes"]
    mnist = data_root() / "mnist"
    if mnist.is_dir() and any(p.name.startswith("train-images") for p in mnist.iterdir()):
        names.append("mnist")
    return names


def compatible_models(data: str) -> list[str]:
    """The zoo models that build for ``data``'s examples (10 classes)."""
    from deltanet.zoo import MODELS, build_model

    ok = []
    for name in MODELS:
        try:
            build_model(name, input_shape=DATASET_SHAPES[data], num_classes=10)
        except (ValueError, TypeError):
            continue
        ok.append(name)
    return ok


def _number(body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number. Received: {value!r}.")
    if kind is int and value != int(value):
        raise ValueError(f"{key} must be a whole number. Received: {value!r}.")
    value = kind(value)
    low, high = LIMITS.get(key, (0, math.inf))
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{key} must be in [{low}, {high}]. Received: {value!r}.")
    return value


def _choice(body: dict[str, Any], key: str, valid: list[str], default: str) -> str:
    value = body.get(key, default)
    if value not in valid:
        raise ValueError(f"{key} must be one of {valid}. Received: {value!r}.")
    return str(value)


def parse_settings(body: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The settings of a run from the page's JSON, checked; ValueError names a bad one."""
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object of settings. Received: {type(body).__name__}.")
    unknown = sorted(set(body) - {"model", "data", "optimizer", "lr", "lr_policy", "epochs",
                                  "batch_size"})  # fmt: skip
    if unknown:
        raise ValueError(f"unknown settings {unknown}.")
    d = options["defaults"]
    s: dict[str, Any] = {"data": _choice(body, "data", list(options["datasets"]), d["data"])}
    models = options["datasets"][s["data"]]["models"]
    s["model"] = _choice(body, "model", models, d["model"] if d["model"] in models else models[0])
    s["optimizer"] = _choice(body, "optimizer", options["optimizers"], d["optimizer"])
    s["lr_policy"] = _choice(body, "lr_policy", options["policies"], d["lr_policy"])
    s["lr"] = _number(body, "lr", float, d["lr"])
    if not 0 < s["lr"] <= 10:
        raise ValueError(f"lr must be in (0, 10]. Received: {s['lr']!r}.")
    s["epochs"] = _number(body, "epochs", int, d["epochs"])
    s["batch_size"] = _number(body, "batch_size", int, d["batch_size"])
    return s


def first_filters(model: Any, input_shape: tuple[int, ...]) -> np.ndarray | None:
    """The first layer's filters as images ``(F, h, w)``: a conv's kernels (input channel 0,
    the middle slice of a 3D one), or a dense layer's rows when they reshape to the image."""
    from deltanet.cli.common import first_weight

    w = first_weight(model)
    if w is None:
        return None
    if w.ndim >= 3:  # (out, in, *kernel)
        k = w[:MAX_FILTERS, 0]
        while k.ndim > 3:
            k = k[:, k.shape[1] // 2]
        return k if k.ndim == 3 else k[:, None, :]
    spatial = input_shape[1:] if len(input_shape) == 3 else ()
    if len(spatial) == 2 and w.shape[1] == math.prod(input_shape):
        return w[:MAX_FILTERS].reshape(-1, *spatial)
    return None


class LiveView(Callback):
    """fit's callback that records a run as events (``job.emit``) and stops it on request."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.watched: list[tuple[str, Any]] = []
        self.deltas: list[float | None] = []
        self.epoch = 0
        self.seen = (0, 0.0, 0.0)  # examples, loss sum, correct sum so far in the epoch
        self.filters_at = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self.state.model
        self.watched = [(n, c) for n, c in model.named_children() if c.has_parameters()]
        self.deltas = [None] * len(self.watched)
        for i, (_, layer) in enumerate(self.watched):
            _watch(layer, self.deltas, i)
        self.job.emit(
            "start",
            **{**self.job.settings, "epochs": self.state.epochs},
            run_dir=str(self.job.run_dir),
            steps_per_epoch=self.state.steps_per_epoch,
            layers=[f"{n} {type(c).__name__}" for n, c in self.watched],
        )

    def on_epoch_begin(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, (0, 0.0, 0.0)

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        # fit logs the epoch's running means: this batch's own figures are the difference
        n, loss_sum, right_sum = self.seen
        size = int(logs["size"])
        self.seen = (n + size, logs["loss"] * (n + size), logs["accuracy"] * (n + size))
        self.job.emit(
            "batch",
            step=step,
            epoch=self.epoch,
            loss=(self.seen[1] - loss_sum) / size,
            accuracy=(self.seen[2] - right_sum) / size,
            delta=list(self.deltas),
        )
        if time.monotonic() - self.filters_at > FILTER_EVERY_S:
            self._send_filters(step)
        if self.job.stop_requested.is_set():
            self.state.stop_training = True  # fit ends the run after this epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        keys = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
        self.job.emit("epoch", epoch=epoch, **{k: float(logs[k]) for k in keys if k in logs})
        self._send_filters(self.state.step)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for _, layer in self.watched:
            layer.__dict__.pop("backward", None)  # the class's own backward again

    def _send_filters(self, step: int) -> None:
        self.filters_at = time.monotonic()
        images = first_filters(self.state.model, self.job.input_shape)
        if images is not None:
            data = np.round(images.astype(np.float64), 5).tolist()
            self.job.emit("filters", step=step, shape=list(images.shape), data=data)


def _watch(layer: Any, record: list[float | None], i: int) -> None:
    """Make ``layer.backward`` note the mean |δ| it receives in ``record[i]`` (on this object
    only: the class and every other model are untouched)."""
    own = layer.backward

    def backward(dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        record[i] = float(np.abs(dy).mean())
        return own(dy, input_grad=input_grad)

    object.__setattr__(layer, "backward", backward)  # past Layer's registries: not a child


class TrainingJob:
    """One training run in a background thread; ``events`` grows as it goes (read it from any
    thread: entries are only appended)."""

    def __init__(self, settings: dict[str, Any], runs_dir: Path) -> None:
        from deltanet.cli import rundir

        self.settings = settings
        self.input_shape = DATASET_SHAPES[settings["data"]]
        self.events: list[dict[str, Any]] = []
        self.stop_requested = threading.Event()
        # The CLI's own naming; train claims the directory itself (and removes it again if the
        # run fails before its first checkpoint), so the name is taken and freed here.
        self.run_dir = rundir.new_run_dir(settings["model"], settings["data"], runs_dir)
        self.run_dir.rmdir()
        self.thread = threading.Thread(target=self._run, name="deltanet-train", daemon=True)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def emit(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, **fields})

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from deltanet.cli.common import read_json
        from deltanet.cli.main import build_parser
        from deltanet.cli.train import run_train

        s = self.settings
        argv = ["train", "--quiet", "--model", s["model"], "--data", s["data"],
                "--optimizer", s["optimizer"], "--lr", repr(s["lr"]), "--lr-policy",
                s["lr_policy"], "--epochs", str(s["epochs"]), "--batch-size",
                str(s["batch_size"])]  # fmt: skip
        for key, value in POLICY_PARAMS[s["lr_policy"]].items():
            argv += [f"--{key}", repr(value)]
        try:
            args = build_parser().parse_args(argv)
            args.out, args.callbacks = str(self.run_dir), [LiveView(self)]
            run_train(args)
            metrics = read_json(self.run_dir / "metrics.json")
        except BaseException as err:  # the page must hear of any failure, SystemExit too
            self.emit("error", message=f"{type(err).__name__}: {err}")
            return
        self.emit(
            "done",
            run_dir=str(self.run_dir),
            stopped=self.stop_requested.is_set(),
            epochs=metrics.get("epochs"),
            test_accuracy=metrics.get("test_accuracy"),
            test_loss=metrics.get("test_loss"),
        )
