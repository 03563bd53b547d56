"""Faults around run directories and output files, through the command as a user runs it.

Each case runs ``python -m deltanet`` in a subprocess under the harness's memory cap, in its
own temporary directory, and ends in a clear error that names the flag at fault (with nothing
written or overwritten) or in the documented behaviour. The runs are tiny: an MLP on 60
examples of 8x8, one or two epochs.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deltanet.io import load_checkpoint
from tests.cli.test_commands import tiny_arrays
from tests.faults.harness import MEMORY_CAP_MB, assert_clean_error, run_cli, snapshot

TRAIN = ("train", "--model", "mlp", "--quiet")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    x, y = tiny_arrays()
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def base(data, tmp_path_factory) -> Path:
    """A finished 2-epoch run (``run/``), trained 1 epoch then resumed to 2, and a copy of its
    epoch-1 checkpoint (``epoch1.safetensors``) beside it. Tests work on copies."""
    root = tmp_path_factory.mktemp("base")
    done = run_cli(*TRAIN, "--data", data, "--epochs", 1, "--out", "run", cwd=root)
    assert done.returncode == 0, done.stderr
    shutil.copy(root / "run" / "checkpoints" / "last.safetensors", root / "epoch1.safetensors")
    last = Path("run", "checkpoints", "last.safetensors")
    done = run_cli("train", "--resume", last, "--epochs", 2, "--quiet", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def copy_run(base: Path, to: Path) -> Path:
    shutil.copytree(base / "run", to)
    return to


def rows(run: Path) -> list[list[str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.reader(f))


def epochs_of(run: Path) -> list[str]:
    return [row[0] for row in rows(run)[1:]]


def checkpoint_epoch(run: Path) -> int:
    return int(load_checkpoint(run / "checkpoints" / "last.safetensors").metadata["epoch"])


# --- export and pack: nothing overwritten without --force, an input never --------------------


@pytest.mark.parametrize("flag", ["--torch", "--onnx"])
def test_export_refuses_an_existing_output_without_force(base, tmp_path, flag):
    (tmp_path / "out.bin").write_bytes(b"precious")
    model = base / "run" / "model.safetensors"
    proc = run_cli("export", model, flag, "out.bin", cwd=tmp_path)
    assert_clean_error(proc, flag, "exists", "--force")
    assert (tmp_path / "out.bin").read_bytes() == b"precious"


@pytest.mark.parametrize("flag", ["--torch", "--onnx"])
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink"])
def test_export_never_writes_onto_its_input_even_with_force(base, tmp_path, flag, spelling):
    run = copy_run(base, tmp_path / "run")
    before = snapshot(run)
    target = {"same": "run/model.safetensors", "dotdot": "run/checkpoints/../model.safetensors"}
    if spelling == "symlink":
        os.symlink(run / "model.safetensors", tmp_path / "link.safetensors")
    out = target.get(spelling, "link.safetensors")
    proc = run_cli("export", "run/model.safetensors", flag, out, "--force", cwd=tmp_path)
    assert_clean_error(proc, flag, "MODEL being read", "even with --force")
    assert snapshot(run) == before


def test_export_never_overwrites_its_torch_template(base, tmp_path):
    (tmp_path / "template.safetensors").write_bytes(b"the template")
    model = base / "run" / "model.safetensors"
    args = ("--torch", "template.safetensors", "--torch-template", "template.safetensors")
    proc = run_cli("export", model, *args, "--force", cwd=tmp_path)
    assert_clean_error(proc, "--torch", "--torch-template being read")
    assert (tmp_path / "template.safetensors").read_bytes() == b"the template"


def test_export_to_one_file_twice_or_to_a_directory_is_refused(base, tmp_path):
    model = base / "run" / "model.safetensors"
    proc = run_cli("export", model, "--onnx", "m.out", "--torch", "./m.out", cwd=tmp_path)
    assert_clean_error(proc, "--onnx and --torch are the same file")
    (tmp_path / "dir").mkdir()
    proc = run_cli("export", model, "--torch", "dir", "--force", cwd=tmp_path)
    assert_clean_error(proc, "--torch", "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_export_with_force_replaces_another_file_atomically(base, tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"old")
    model = base / "run" / "model.safetensors"
    proc = run_cli("export", model, "--torch", "w.safetensors", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "w.safetensors").read_bytes()[8:9] == b"{"  # a safetensors header
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # no temp file


@pytest.mark.parametrize("out", ["run/model.safetensors", "run/./model.safetensors"])
def test_pack_never_writes_onto_its_input_even_with_force(base, tmp_path, out):
    run = copy_run(base, tmp_path / "run")
    before = snapshot(run)
    proc = run_cli("pack", "run/model.safetensors", out, "--force", cwd=tmp_path)
    assert_clean_error(proc, "is MODEL", "even with --force")
    assert snapshot(run) == before


# --- run directories: unique, never another run's ---------------------------------------------


def start_cli(*args: object, cwd: Path) -> subprocess.Popen[str]:
    """``python -m deltanet ARGS`` started (not waited for), under the harness's memory cap."""

    def cap() -> None:
        size = MEMORY_CAP_MB * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "deltanet", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=cap,
        env=env,
    )


def test_two_runs_started_together_get_a_directory_each(data, tmp_path):
    procs = [
        start_cli(*TRAIN, "--data", data, "--epochs", 2, "--seed", seed, cwd=tmp_path)
        for seed in (1, 2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    seeds = set()
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert config["seed"] == metrics["seed"] and metrics["epochs"] == 2
        assert epochs_of(run) == ["1", "2"] and checkpoint_epoch(run) == 2
        seeds.add(config["seed"])
    assert seeds == {1, 2}


def test_resume_into_another_finished_run_is_refused(base, tmp_path):
    a, b = copy_run(base, tmp_path / "a"), copy_run(base, tmp_path / "b")
    before = snapshot(tmp_path)
    proc = run_cli(
        "train", "--resume", a / "checkpoints" / "last.safetensors", "--out", b,
        "--epochs", 3, cwd=tmp_path,
    )  # fmt: skip
    assert_clean_error(proc, "--out", "is not empty", "never in another run")
    assert snapshot(tmp_path) == before
    assert epochs_of(a) == epochs_of(b) == ["1", "2"]


@pytest.mark.parametrize("out_exists", [False, True])
def test_resume_into_a_new_out_carries_the_whole_history(base, tmp_path, out_exists):
    a = copy_run(base, tmp_path / "a")
    before = snapshot(a)
    if out_exists:
        (tmp_path / "c").mkdir()
    proc = run_cli("train", "--resume", a / "checkpoints" / "last.safetensors", "--out", "c",
                   "--epochs", 3, "--quiet", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    c = tmp_path / "c"
    assert rows(c)[:3] == rows(a) and epochs_of(c) == ["1", "2", "3"]
    assert checkpoint_epoch(c) == 3 and (c / "checkpoints" / "best.safetensors").is_file()
    assert json.loads((c / "metrics.json").read_text())["epochs"] == 3
    assert json.loads((c / "config.json").read_text())["epochs"] == 3
    assert snapshot(a) == before  # the original run is untouched


def test_a_moved_checkpoint_continues_only_into_a_new_out(base, tmp_path):
    shutil.copy(base / "run" / "checkpoints" / "last.safetensors", tmp_path / "moved.safetensors")
    proc = run_cli("train", "--resume", "moved.safetensors", "--epochs", 3, cwd=tmp_path)
    assert_clean_error(proc, "--resume", "not in a run directory", "--out DIR")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved.safetensors"]
    proc = run_cli("train", "--resume", "moved.safetensors", "--epochs", 3, "--out", "d",
                   "--quiet", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert epochs_of(tmp_path / "d") == ["1", "2", "3"]


def test_resume_from_a_model_file_is_refused(base, tmp_path):
    run = copy_run(base, tmp_path / "run")
    before = snapshot(run)
    proc = run_cli("train", "--resume", "run/model.safetensors", "--epochs", 3, cwd=tmp_path)
    assert_clean_error(proc, "--resume", "not a training checkpoint")
    assert snapshot(run) == before


def test_an_out_without_a_checkpoint_gets_no_resume_hint(data, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    proc = run_cli(*TRAIN, "--data", data, "--epochs", 1, "--out", "out", cwd=tmp_path)
    assert_clean_error(proc, "--out", "not empty", "holds no checkpoint")
    assert "--resume" not in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


# --- the run directory describes exactly its checkpoint ----------------------------------------


@pytest.mark.parametrize("damage", ["extra_row", "missing_row", "partial_row", "no_file"])
def test_resume_cuts_history_back_to_the_checkpoint(base, tmp_path, damage):
    """What a SIGKILL between a history row and its checkpoint, or a full disk, leaves."""
    run = copy_run(base, tmp_path / "run")
    good = rows(run)
    path = run / "history.csv"
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    damaged = {
        "extra_row": text + "3,0.9,0.1,0.9,0.1,0.002,0.1,100.0\n",
        "missing_row": "".join(lines[:-1]),
        "partial_row": text + "3,0.9,0.",
    }
    if damage == "no_file":
        path.unlink()
    else:
        path.write_text(damaged[damage])
    proc = run_cli("train", "--resume", "run/checkpoints/last.safetensors", "--epochs", 3,
                   "--quiet", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert rows(run)[:3] == good and epochs_of(run) == ["1", "2", "3"]
    assert all(len(row) == len(good[0]) for row in rows(run)) and checkpoint_epoch(run) == 3
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


def test_resume_never_goes_back_behind_the_runs_latest_checkpoint(base, tmp_path):
    """best.safetensors of an earlier epoch: in its own run it would discard later epochs."""
    run = copy_run(base, tmp_path / "run")
    shutil.copy(base / "epoch1.safetensors", run / "checkpoints" / "best.safetensors")
    before, run_before = snapshot(tmp_path), snapshot(run)
    best = "run/checkpoints/best.safetensors"
    proc = run_cli("train", "--resume", best, "--epochs", 3, cwd=tmp_path)
    assert_clean_error(proc, "--resume", "went on to epoch 2", "discard epochs 2-2", "--out")
    assert snapshot(tmp_path) == before
    proc = run_cli("train", "--resume", best, "--epochs", 3, "--out", "branch", "--quiet",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    branch = tmp_path / "branch"
    assert rows(branch)[:2] == rows(run)[:2] and epochs_of(branch) == ["1", "2", "3"]
    assert snapshot(run) == run_before


# --- resume means what it says -----------------------------------------------------------------


@pytest.mark.parametrize("epochs", [None, 2, 1])
def test_resume_with_no_epochs_left_is_refused(base, tmp_path, epochs):
    run = copy_run(base, tmp_path / "run")
    before = snapshot(run)
    extra = () if epochs is None else ("--epochs", epochs)
    proc = run_cli("train", "--resume", "run/checkpoints/last.safetensors", *extra, cwd=tmp_path)
    assert_clean_error(proc, "--epochs", "2 epochs", "N > 2", "nothing was written")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--seed", 5),
        ("--val-fraction", 0.3),
        ("--batch-size", 8),
        ("--model", "digits_cnn"),
        ("--optimizer", "sgd"),
        ("--lr", 0.1),
        ("--no-standardize", None),
        ("--data", "other.npz"),
    ],
)
def test_resume_with_another_setting_is_refused(base, data, tmp_path, flag, value):
    run = copy_run(base, tmp_path / "run")
    shutil.copy(data, tmp_path / "other.npz")
    before = snapshot(tmp_path)
    given = (flag,) if value is None else (flag, value)
    proc = run_cli("train", "--resume", "run/checkpoints/last.safetensors", "--epochs", 3,
                   *given, cwd=tmp_path)  # fmt: skip
    assert_clean_error(proc, f"{flag.replace('no-', '')} ", "differs from the resumed run's")
    assert snapshot(tmp_path) == before
    assert epochs_of(run) == ["1", "2"]


def test_resume_with_the_runs_own_settings_given_again_continues(base, data, tmp_path):
    run = copy_run(base, tmp_path / "run")
    same = ("--seed", 0, "--model", "mlp", "--data", os.path.relpath(data, tmp_path))
    proc = run_cli("train", "--resume", "run/checkpoints/last.safetensors", "--epochs", 3,
                   *same, "--quiet", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert epochs_of(run) == ["1", "2", "3"] and checkpoint_epoch(run) == 3


# --- a run that fails before its first checkpoint leaves nothing behind ------------------------


@pytest.mark.parametrize("out", ["new", "empty", None])
def test_a_failure_in_the_first_epoch_leaves_nothing(data, tmp_path, out):
    if out == "empty":
        (tmp_path / "empty").mkdir()
    where = () if out is None else ("--out", out)
    diverge = ("--optimizer", "sgd", "--lr", 1e300)
    proc = run_cli(*TRAIN, "--data", data, "--epochs", 2, *diverge, *where, cwd=tmp_path)
    assert_clean_error(proc, "diverged")
    if out == "new":
        assert not (tmp_path / "new").exists()
    elif out == "empty":
        assert list((tmp_path / "empty").iterdir()) == []
    else:
        assert list((tmp_path / "runs").iterdir()) == []
    if out is not None:  # the same --out takes a new run at once
        proc = run_cli(*TRAIN, "--data", data, "--epochs", 1, *where, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert epochs_of(tmp_path / out) == ["1"]


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt", reason="POSIX signals")
def test_an_interrupt_in_the_first_epoch_leaves_nothing(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((4000, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(4000) % 3)
    proc = start_cli("train", "--data", "big.npz", "--batch-size", 1, "--epochs", 2,
                     "--out", "out", cwd=tmp_path)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("run directory:"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# --- bounded numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, flag",
    [
        (("--epochs", "99999999999999999999"), "--epochs"),
        (("--epochs", 1_000_001), "--epochs"),
        (("--epochs", 0), "--epochs"),
        (("--epochs", -3), "--epochs"),
        (("--epochs", 2, "--warmup", 4), "--warmup"),  # 2 epochs of 2 batches
        (("--epochs", 2, "--warmup", 10**30), "--warmup"),
        (("--epochs", 2, "--warmup", -1), "--warmup"),
        (("--epochs", 2, "--min-lr", 1), "--min-lr"),
        (("--epochs", 2, "--min-lr", -0.1), "--min-lr"),
        (("--epochs", 2, "--min-lr", "nan"), "--min-lr"),
        (("--epochs", 2, "--lr-policy", "step", "--min-lr", 0), "--lr-policy step"),
    ],
)
def test_out_of_range_numbers_are_refused(data, tmp_path, args, flag):
    proc = run_cli(*TRAIN, "--data", data, *args, cwd=tmp_path)
    assert_clean_error(proc, flag)
    assert list(tmp_path.iterdir()) == []


def test_the_longest_warmup_and_the_highest_min_lr_train(data, tmp_path):
    extra = ("--warmup", 3, "--min-lr", 0.002, "--lr", 0.002)  # 4 iterations in all
    proc = run_cli(*TRAIN, "--data", data, "--epochs", 2, *extra, "--out", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert epochs_of(tmp_path / "o") == ["1", "2"]
