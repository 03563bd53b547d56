"""The CLI on image data: ``--data DIR`` (an image folder) through train, evaluate and predict
with its class names, ``--image-size``, ``--bad-images``, shapes that do not fit a model, and
``resnet20`` on a generated CIFAR-10 directory (in-process through ``deltanet.cli.main``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_commands import run
from tests.data.test_cifar10 import write_cifar10
from tests.data.test_folder import make_folder


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path / "cache"))


def train(capsys, *args):
    common = ("train", "--quiet", "--epochs", 1, "--lr-policy", "fixed", "--batch-size", 16)
    return run(capsys, *common, *args)


def test_image_folder_train_evaluate_predict_with_class_names(tmp_path, capsys):
    pets = make_folder(tmp_path / "pets", n=8, size=(12, 12), rgb=True)
    status, _, err = train(capsys, "--data", pets, "--image-size", "10", "--out", tmp_path / "r")
    assert status == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["data"] == str(pets.resolve()) and config["image_size"] == "10x10"
    model = tmp_path / "r" / "model.safetensors"
    status, out, err = run(capsys, "evaluate", model)
    assert status == 0 and "on pets test set (6 examples)" in out, err
    status, out, err = run(capsys, "predict", model, pets / "fox" / "extra.jpg")
    assert status == 0, err
    assert out.startswith("class ") and "cat: " in out and "dog: " in out and "fox: " in out
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 10, 10), np.float32))
    status, out, _ = run(capsys, "predict", model, tmp_path / "x.npy")
    assert status == 0 and out.startswith("example 0: class ")
    status, _, err = run(capsys, "predict", model, pets / "cat" / "notes.txt")
    assert status == 2 and "INPUT must be an image" in err


def test_bad_images_flag_and_folder_errors(tmp_path, capsys):
    pets = make_folder(tmp_path / "pets", n=6)
    bad = pets / "cat" / "2.png"
    bad.write_bytes(b"")
    status, _, err = train(capsys, "--data", pets, "--out", tmp_path / "a")
    assert status == 2 and f"{bad}: an empty file" in err and "--bad-images skip" in err
    assert "Traceback" not in err and not (tmp_path / "a").exists()
    status, _, err = train(capsys, "--data", pets, "--bad-images", "skip", "--out", tmp_path / "b")
    assert status == 0 and "note: " in err and str(bad) in err
    status, _, err = train(capsys, "--data", str(tmp_path / "nothing") + "/")
    assert status == 2 and "--data: no image folder at" in err
    status, _, err = train(capsys, "--data", pets / "dog")  # images without class folders
    assert status == 2 and "no class folders and 7 image files directly in it" in err
    status, _, err = train(capsys, "--data", pets, "--image-size", "0")
    assert status == 2 and "image_size must be" in err


def test_digits_image_size_and_shapes_that_do_not_fit_the_model(tmp_path, capsys):
    status, _, err = train(
        capsys, "--data", "digits", "--model", "mlp", "--image-size", "12", "--out", tmp_path / "d"
    )
    assert status == 0, err
    model = tmp_path / "d" / "model.safetensors"
    status, out, err = run(capsys, "evaluate", model)  # its own data: resized as in training
    assert status == 0 and "digits test set (360 examples)" in out, err
    status, _, err = run(capsys, "evaluate", model, "--data", "digits")
    assert status == 2
    assert "takes examples of shape (1, 12, 12)" in err and "shape (1, 8, 8)" in err
    assert "--image-size 12x12" in err
    write_cifar10(tmp_path / "c", n_train=(4, 4, 4, 4, 4), n_test=10)
    status, _, err = run(
        capsys, "evaluate", model, "--data", "cifar10", "--data-dir", tmp_path / "c"
    )
    assert status == 2 and "(1, 12, 12)" in err and "(3, 32, 32)" in err
    status, _, err = run(capsys, "evaluate", model, "--data", "cifar10", "--data-dir", tmp_path)
    assert status == 2 and "CIFAR-10 files missing" in err and "evaluate: --download" in err
    last = tmp_path / "d" / "checkpoints" / "last.safetensors"
    status, _, err = train(capsys, "--resume", last, "--epochs", 2, "--image-size", 8)
    assert status == 2 and "--image-size 8x8 differs from the resumed run's" in err


def test_cifar10_missing_names_the_files_and_the_flag(tmp_path, capsys):
    status, _, err = train(capsys, "--data", "cifar10", "--data-dir", tmp_path / "none")
    assert status == 2 and "data_batch_1.bin" in err and "--download" in err


def test_plot_of_a_run_whose_downloadable_data_is_missing_warns(tmp_path, capsys):
    from deltanet import io
    from deltanet.cli.common import load_model_file

    write_cifar10(tmp_path / "c", n_train=(4, 4, 4, 4, 4), n_test=10)
    out = tmp_path / "r"
    status, _, err = train(
        capsys, "--data", "cifar10", "--data-dir", tmp_path / "c", "--model", "mlp", "--out", out
    )
    assert status == 0, err
    model, meta = load_model_file(str(out / "model.safetensors"))
    meta["data_dir"] = str(tmp_path / "gone")  # the files have moved since the run
    io.save(model, out / "model.safetensors", metadata={"run": meta})
    status, _, err = run(capsys, "plot", out)  # no --download flag to name: the plain error
    assert status == 0 and "no test-set plots: " in err and "CIFAR-10 files missing" in err
    assert "--download" not in err


def test_resnet20_one_epoch_on_a_generated_cifar10_directory(tmp_path, capsys):
    write_cifar10(tmp_path / "c", n_train=(10, 10, 10, 10, 10), n_test=20)
    status, out, err = train(
        capsys, "--model", "resnet20", "--data", "cifar10", "--data-dir", tmp_path / "c",
        "--out", tmp_path / "r",
    )  # fmt: skip
    assert status == 0, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["train_size"] == 50 and metrics["test_size"] == 20
    assert metrics["model"] == "resnet20" and metrics["epochs"] == 1


def test_resume_on_data_of_another_shape_fails_before_work(tmp_path, capsys):
    pets = make_folder(tmp_path / "pets", n=6, size=(12, 12))
    status, _, err = train(capsys, "--data", pets, "--model", "mlp", "--out", tmp_path / "r")
    assert status == 0, err
    make_folder(pets, n=6, size=(10, 10))  # the same folder, its images now 10x10
    last = tmp_path / "r" / "checkpoints" / "last.safetensors"
    status, _, err = train(capsys, "--resume", last, "--epochs", 2)
    assert status == 2, err
    assert "takes examples of shape (1, 12, 12)" in err and "shape (1, 10, 10)" in err
    assert len(list((tmp_path / "r" / "checkpoints").iterdir())) >= 1


def test_folder_run_directory_name_and_resume_with_the_folder_spelt_otherwise(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "pets", n=6)
    status, _, err = train(capsys, "--data", "pets", "--model", "mlp")
    assert status == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("mlp-pets-")
    last = run_dir / "checkpoints" / "last.safetensors"
    status, _, err = train(capsys, "--data", "./pets/", "--resume", last, "--epochs", 2)
    assert status == 0, err
