"""The ``deltanet`` command end to end on tiny data: train, then every tool on its output.

Most commands run in-process through ``deltanet.cli.main`` (fast); the end-to-end runs and the
start-up checks use a subprocess (``python -m deltanet``), as a user's shell would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deltanet import io
from deltanet.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
RUN_FILES = (
    "model.safetensors",
    "history.csv",
    "metrics.json",
    "config.json",
    "learning_curves.png",
    "confusion_matrix.png",
    "filters.png",
    "misclassified.png",
)


def deltanet(*args, cwd=None):
    """Run ``python -m deltanet ARGS`` in a subprocess; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "deltanet", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def tiny_arrays(n=60, seed=0):
    """Three classes of 8x8 images, each a bright bar in its own row band, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = 0.1 * rng.random((n, 1, 8, 8)).astype(np.float32)
    for k in range(3):
        x[y == k, 0, 2 * k + 1 : 2 * k + 3, :] += 1.0
    return x, y


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    x, y = tiny_arrays()
    np.savez(d / "tiny.npz", x=x, y=y)
    bad_x = x.copy()
    bad_x[5, 0, 3, 3] = np.nan
    np.savez(d / "nan.npz", x=bad_x, y=y)
    np.savez(d / "labels.npz", x=x, y=y - 1)
    np.savez(d / "shape.npz", x=x[:, 0, 0, 0], y=y)
    (d / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    return d


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    """One real run in a subprocess: digits_cnn (chosen from the data), 1 epoch, tiny data."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = deltanet("train", "--epochs", 1, "--data", data_dir / "tiny.npz", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    return out


def is_png(path: Path) -> bool:
    return path.stat().st_size > 100 and path.read_bytes()[:8] == PNG


def run(capsys, *args):
    """``main(args)`` in-process: ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


# --- train ----------------------------------------------------------------------------------


def test_train_writes_the_run_directory(run_dir):
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()
    for name in RUN_FILES:
        if name.endswith(".png"):
            assert is_png(run_dir / name), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "epochs", "seconds", "images_per_second"):
        assert key in metrics, key
    assert metrics["epochs"] == 1 and metrics["model"] == "digits_cnn"
    assert metrics["test_size"] == 12 and metrics["train_size"] == 48
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["images_per_second"] > 0
    lines = (run_dir / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(lines) == 2
    model = io.load(run_dir / "model.safetensors")
    assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 3)


def test_train_mlp_learns_the_tiny_data(data_dir, tmp_path, capsys):
    out = tmp_path / "mlp"
    args = ["train", "--model", "mlp", "--data", data_dir / "tiny.npz", "--epochs", 8]
    status, stdout, _ = run(capsys, *args, "--lr", 0.02, "--out", out, "--quiet")
    assert status == 0 and stdout == ""
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "mlp" and metrics["epochs"] == 8
    assert metrics["test_accuracy"] == 1.0


def test_default_out_is_a_new_directory_under_runs(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ("train", "--model", "mlp", "--data", data_dir / "tiny.npz", "--epochs", 1, "--quiet")
    assert run(capsys, *args)[0] == 0
    assert run(capsys, *args)[0] == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.startswith("mlp-tiny-") for r in runs)


def test_resume_continues_exactly(data_dir, tmp_path, capsys):
    common = ["--model", "mlp", "--data", data_dir / "tiny.npz", "--lr-policy", "fixed", "--quiet"]
    assert run(capsys, "train", *common, "--epochs", 3, "--out", tmp_path / "a")[0] == 0
    assert run(capsys, "train", *common, "--epochs", 1, "--out", tmp_path / "b")[0] == 0
    ckpt = tmp_path / "b" / "checkpoints" / "last.safetensors"
    assert run(capsys, "train", "--resume", ckpt, "--epochs", 3, "--quiet")[0] == 0
    a = io.load(tmp_path / "a" / "model.safetensors").state_dict()
    b = io.load(tmp_path / "b" / "model.safetensors").state_dict()
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert len((tmp_path / "b" / "history.csv").read_text().splitlines()) == 4


# --- the tools on the run's output ----------------------------------------------------------


def test_evaluate(run_dir, capsys):
    status, out, _ = run(capsys, "evaluate", run_dir / "model.safetensors")
    assert status == 0
    assert "12 examples" in out and "accuracy" in out and "loss" in out
    # checkpoints carry the run's data and preprocessing too
    status, out_ckpt, _ = run(capsys, "evaluate", run_dir / "checkpoints" / "last.safetensors")
    assert status == 0 and out_ckpt.splitlines()[1:] == out.splitlines()[1:]


def test_predict_npy_and_png(run_dir, tmp_path, capsys):
    from PIL import Image

    x, _ = tiny_arrays()
    np.save(tmp_path / "one.npy", x[0])
    np.save(tmp_path / "three.npy", x[:3])
    image = (255 * np.kron(x[0, 0].clip(0, 1), np.ones((4, 4)))).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "one.png")
    model_file = run_dir / "model.safetensors"
    status, out, _ = run(capsys, "predict", model_file, tmp_path / "one.npy")
    assert status == 0 and out.startswith("class ") and "probabilities:" in out
    status, out, _ = run(capsys, "predict", model_file, tmp_path / "three.npy")
    assert status == 0 and out.count("example ") == 3
    status, out, _ = run(capsys, "predict", model_file, tmp_path / "one.png")
    assert status == 0 and "probability" in out
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5), np.float32))
    status, _, err = run(capsys, "predict", model_file, tmp_path / "wrong.npy")
    assert status == 2 and "(1, 8, 8)" in err


def test_summary(run_dir, capsys):
    status, out, _ = run(capsys, "summary", run_dir / "model.safetensors")
    assert status == 0 and "Conv2D" in out and "Total params" in out
    status, out, _ = run(capsys, "summary", "--model", "lenet5")
    assert status == 0 and "Total params: 61,706" in out


def test_gradcheck(run_dir, capsys):
    status, out, _ = run(capsys, "gradcheck", "--model", "mlp", "--input-shape", "16")
    assert status == 0 and "elementwise" in out
    for name in ("1.weight", "1.bias", "3.weight", "3.bias"):
        assert name in out
    assert "OK" in out
    status, out, _ = run(capsys, "gradcheck", run_dir / "model.safetensors")
    assert status == 0 and "directional" in out and "0.weight" in out


def test_plot_recreates_the_plots(run_dir, capsys):
    for name in RUN_FILES:
        if name.endswith(".png"):
            (run_dir / name).unlink()
    status, out, _ = run(capsys, "plot", run_dir)
    assert status == 0
    for name in RUN_FILES:
        if name.endswith(".png"):
            assert is_png(run_dir / name), name


# --- bad input: one clear line, status 2, nothing written -------------------------------------


def test_unknown_model_lists_the_valid_ones(capsys):
    status, _, err = run(capsys, "train", "--model", "resnet")
    assert status == 2 and "digits_cnn" in err and "lenet5" in err and "cnn3d" in err


def test_unknown_dataset_lists_the_valid_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "train", "--data", "imagenet")
    assert status == 2 and err.startswith("deltanet: error:")
    assert "digits, mnist, mnist1d, volumes" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "name, message",
    [
        ("nan.npz", "finite"),
        ("labels.npz", "labels must be >= 0"),
        ("shape.npz", "shape"),
        ("missing.npz", "no file"),
    ],
)
def test_bad_data_fails_before_training(data_dir, tmp_path, capsys, name, message):
    out = tmp_path / "out"
    status, stdout, err = run(capsys, "train", "--data", data_dir / name, "--out", out)
    assert status == 2 and err.startswith("deltanet: error:") and message in err
    assert stdout == "" and not out.exists()


def test_existing_out_dir_is_never_overwritten(run_dir, data_dir, capsys):
    before = {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    status, _, err = run(capsys, "train", "--data", data_dir / "tiny.npz", "--out", run_dir)
    assert status == 2 and "not empty" in err
    assert {p: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_resume_of_missing_or_corrupt_file(data_dir, tmp_path, capsys):
    status, _, err = run(capsys, "train", "--resume", tmp_path / "nothing.safetensors")
    assert status == 2 and "no checkpoint file" in err
    status, _, err = run(capsys, "train", "--resume", data_dir / "corrupt.safetensors")
    assert status == 2 and "--resume" in err and "corrupt.safetensors" in err
    assert not (tmp_path / "runs").exists()


def test_bad_settings(data_dir, tmp_path, capsys):
    tiny = data_dir / "tiny.npz"
    cases = [
        (["--epochs", 0], "--epochs"),
        (["--lr", -1], "--lr"),
        (["--val-fraction", 1.5], "--val-fraction"),
        (["--lr-policy", "step"], "Missing: ['gamma', 'stepsize']"),
        (["--model", "lenet5"], "at least 12"),
    ]
    for extra, message in cases:
        status, _, err = run(capsys, "train", "--data", tiny, "--out", tmp_path / "x", *extra)
        assert status == 2 and message in err, (extra, err)
    assert not (tmp_path / "x").exists()


def test_errors_have_no_traceback_in_a_subprocess(data_dir, tmp_path):
    result = deltanet("train", "--data", data_dir / "nan.npz", "--out", tmp_path / "x")
    assert result.returncode == 2
    assert result.stderr.startswith("deltanet: error:") and "Traceback" not in result.stderr
    result = deltanet("evaluate", tmp_path / "none.safetensors")
    assert result.returncode == 2 and "no model file" in result.stderr


# --- start-up -------------------------------------------------------------------------------


def test_help_shows_examples_and_imports_nothing_heavy():
    result = deltanet("--help")
    assert result.returncode == 0 and "examples:" in result.stdout and "train" in result.stdout
    assert "examples:" in deltanet("train", "-h").stdout
    code = (
        "import sys, deltanet.cli, deltanet.cli.train, deltanet.cli.commands\n"
        "heavy = ('matplotlib', 'sklearn', 'tqdm', 'scipy', 'mnist1d', 'torch')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_console_script():
    script = Path(sys.executable).parent / ("deltanet.exe" if os.name == "nt" else "deltanet")
    if not script.exists():
        pytest.skip("the deltanet console script is not installed (pip install -e .)")
    result = subprocess.run([script, "summary", "--model", "mlp"], capture_output=True, text=True)
    assert result.returncode == 0 and "10,285" in result.stdout
