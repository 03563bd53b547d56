"""Runs started through the API: live events, one at a time, Stop, normal run directories."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from deltanet.serve import training  # noqa: E402
from tests.serve.conftest import QUIET  # noqa: E402

pytestmark = QUIET
RUN_FILES = ("model.safetensors", "history.csv", "metrics.json", "config.json",
             "checkpoints/last.safetensors", "learning_curves.png")  # fmt: skip


def events(client, since: int = 0) -> list[dict]:
    """The run's events, read from the SSE stream until it ends."""
    with client.stream("GET", f"/api/train/events?since={since}") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


def wait_for(client, kind: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.app.state.playground.job
        if any(e["type"] == kind for e in job.events):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} event in {timeout} s")


def test_dataset_shapes_are_the_loaders():
    from deltanet.data import load_dataset

    for name in ("digits", "mnist1d"):
        assert tuple(load_dataset(name).input_shape) == training.DATASET_SHAPES[name]


def test_options(client):
    o = client.get("/api/train/options").json()
    assert {"digits", "mnist1d", "volumes"} <= set(o["datasets"])
    digits = o["datasets"]["digits"]["models"]
    assert "digits_cnn" in digits and "mlp" in digits and "lenet5" not in digits
    assert "cnn1d" in o["datasets"]["mnist1d"]["models"]
    assert o["defaults"]["model"] in digits and "adam" in o["optimizers"]
    assert {"cosine", "fixed", "inv"} <= set(o["policies"])


@pytest.mark.parametrize(
    "body, words",
    [
        ({"model": "lenet5"}, "model must be one of"),  # lenet5 does not take 8x8 digits
        ({"data": "/etc/passwd"}, "data must be one of"),
        ({"lr": -1}, "lr must be in"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"epochs": 0}, "epochs must be in [1, 200]"),
        ({"epochs": 1.5}, "whole number"),
        ({"out": "/tmp/x"}, "unknown settings ['out']"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_settings_are_a_400_naming_them(client, body, words):
    r = client.post("/api/train", json=body)
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert client.app.state.playground.job is None


def test_a_run_streams_its_progress_and_leaves_a_normal_run_directory(client, tmp_path):
    settings = {"model": "mlp", "data": "digits", "epochs": 2, "lr": 0.05, "lr_policy": "fixed"}
    r = client.post("/api/train", json=settings)
    assert r.status_code == 202, r.text
    again = client.post("/api/train", json=settings)
    assert again.status_code == 409 and "one run at a time" in again.json()["error"]
    evs = events(client)
    kinds = [e["type"] for e in evs]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("epoch") == 2
    start, done = evs[0], evs[-1]
    assert start["layers"] == ["1 Dense", "3 Dense"] and start["steps_per_epoch"] == 41
    batches = [e for e in evs if e["type"] == "batch"]
    assert len(batches) == 2 * 41 and all(0 <= b["accuracy"] <= 1 for b in batches)
    epoch = next(e for e in evs if e["type"] == "epoch")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epoch)
    filters = next(e for e in evs if e["type"] == "filters")
    assert filters["shape"] == [25, 8, 8]  # the first dense layer's rows, as 8x8 images
    # the sigmoid network's vanishing gradient: the lower layer receives a far smaller δ
    lower, upper = np.mean([b["delta"] for b in batches], axis=0)
    assert lower < upper / 4
    run = tmp_path / "runs" / done["run_dir"].split("/")[-1]
    assert str(run) == done["run_dir"] and not done["stopped"] and done["epochs"] == 2
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["model"] == "mlp"
    from deltanet.cli.main import main

    assert main(["evaluate", str(run / "model.safetensors")]) == 0  # usable from the CLI
    assert events(client, since=len(evs)) == []  # a finished stream resumes at its end


def test_stop_ends_the_run_after_its_epoch(client, tmp_path):
    assert client.post("/api/train/stop").status_code == 409
    r = client.post("/api/train", json={"model": "digits_cnn", "epochs": 100})
    assert r.status_code == 202
    wait_for(client, "batch")
    stop = client.post("/api/train/stop")
    assert stop.status_code == 202 and stop.json()["stopping"]
    evs = events(client)
    done = evs[-1]
    assert done["type"] == "done" and done["stopped"] and done["epochs"] < 100
    assert sum(e["type"] == "epoch" for e in evs) == done["epochs"]
    run = tmp_path / "runs" / done["run_dir"].split("/")[-1]
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    conv = next(e for e in evs if e["type"] == "filters")
    assert conv["shape"] == [32, 3, 3]  # digits_cnn's first convolution
    status = client.get("/api/train").json()
    assert not status["running"] and status["run_dir"] == done["run_dir"]


def test_a_failing_run_reports_its_error(client, monkeypatch):
    def boom(args):
        raise RuntimeError("disk full")

    monkeypatch.setattr("deltanet.cli.train.run_train", boom)
    assert client.post("/api/train", json={"epochs": 1}).status_code == 202
    evs = events(client)
    assert evs[-1] == {"type": "error", "message": "RuntimeError: disk full"}
