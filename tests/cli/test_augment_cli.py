"""``deltanet train --augment``: recorded with the run, kept on --resume, refused when it does
not fit the data (in-process through ``deltanet.cli.main``, on tiny data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deltanet import io
from deltanet.cli import rundir
from deltanet.cli.common import CliError
from deltanet.cli.train import _check_augment
from tests.cli.test_commands import run, tiny_arrays


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("augment_data")
    x, y = tiny_arrays()
    np.savez(d / "tiny.npz", x=x, y=y)
    np.savez(d / "signals.npz", x=x[:, :, 0, :], y=y)  # (N, 1, 8): 1D signals
    return d


def train(capsys, data, *args):
    common = ["train", "--model", "mlp", "--data", data / "tiny.npz", "--quiet"]
    return run(capsys, *common, "--lr-policy", "fixed", *args)


def weights(path: Path) -> dict:
    return io.load(path).state_dict()


def test_augment_is_recorded_and_resume_continues_it_exactly(data, tmp_path, capsys):
    for out, epochs, spec in (("a", 3, "crop1,flip"), ("b", 1, " crop1, flip")):
        assert (
            train(capsys, data, "--epochs", epochs, "--augment", spec, "--out", tmp_path / out)[0]
            == 0
        )
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["augment"] == "crop1,flip"  # in its canonical form
    ckpt = tmp_path / "b" / "checkpoints" / "last.safetensors"
    meta = io.load_checkpoint(ckpt).metadata
    assert meta["run"]["config"]["augment"] == "crop1,flip" and meta["augment"] == "crop1,flip"
    assert run(capsys, "train", "--resume", ckpt, "--epochs", 3, "--quiet")[0] == 0
    a, b = (weights(tmp_path / d / "model.safetensors") for d in "ab")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    status, _, err = run(capsys, "train", "--resume", ckpt, "--epochs", 4, "--augment", "flip")
    assert status == 2
    assert "--augment flip differs from the resumed run's crop1,flip" in err


def test_augment_none_is_the_default_and_may_be_repeated_on_resume(data, tmp_path, capsys):
    assert train(capsys, data, "--epochs", 1, "--out", tmp_path / "r")[0] == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["augment"] == "none"
    ckpt = tmp_path / "r" / "checkpoints" / "last.safetensors"
    assert run(capsys, "train", "--resume", ckpt, "--epochs", 2, "--augment", "none",
               "--quiet")[0] == 0  # fmt: skip
    status, _, err = run(capsys, "train", "--resume", ckpt, "--epochs", 3, "--augment", "crop1")
    assert status == 2 and "--augment crop1 differs from the resumed run's none" in err


@pytest.mark.parametrize(
    "spec, file, message",
    [
        ("flip", "signals.npz", "--augment flip: augment 'flip' needs examples of shape "
                                "(C, H, W) (images). Received: examples of shape (1, 8)."),
        ("crop2", "signals.npz", "use shift2z, the 1D crop"),
        ("shift2", "tiny.npz", "augment 'shift2' needs examples of shape (C, L) (1D signals)"),
        ("crop8", "tiny.npz", "the padding must be smaller than every spatial size"),
    ],
)  # fmt: skip
def test_augment_that_does_not_fit_the_data_fails_before_the_run_directory(
    data, tmp_path, capsys, spec, file, message
):
    out = tmp_path / "never"
    status, _, err = run(capsys, "train", "--data", data / file, "--augment", spec, "--out", out)
    assert status == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_unknown_augment_is_a_usage_error(capsys):
    status, _, err = run(capsys, "train", "--augment", "crop4,flop")
    assert status == 2
    assert "argument --augment: augment spec 'crop4,flop': unknown transform 'flop'" in err


def test_a_run_from_before_augment_cannot_start_augmenting(tmp_path):
    old = rundir.Resume(tmp_path / "old.safetensors", 1, {"epochs": 1}, None)
    with pytest.raises(CliError, match="trained without augmentation"):
        _check_augment({"augment": "flip"}, (1, 8, 8), old)
    _check_augment({"augment": "none"}, (1, 8, 8), old)
