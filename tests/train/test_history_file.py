"""CSVLogger's file always describes the run's checkpoint: a resumed run rewrites it with the
epochs its checkpoint holds, and a new run leaves an old file alone until its first epoch."""

from __future__ import annotations

import csv
import shutil

import pytest

from deltanet.optim import Adam
from deltanet.train import Callback, CSVLogger, ModelCheckpoint, fit
from tests.train.common import blobs, mlp


def train(directory, epochs, resume_from=None, callbacks=()):
    model = mlp()
    logger = CSVLogger(directory / "history.csv")
    fit(model, "cross_entropy", Adam(model, lr=0.01), blobs(), epochs=epochs, batch_size=40,
        validation_data=blobs(40, seed=1), seed=3, verbose=0, resume_from=resume_from,
        callbacks=[ModelCheckpoint(directory, save_best=False), logger, *callbacks])  # fmt: skip


def rows(directory):
    with open(directory / "history.csv", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("damage", ["extra_rows", "partial_row", "missing_row", "older_ckpt"])
def test_a_resumed_run_rewrites_the_file_to_its_checkpoint(tmp_path, damage):
    train(tmp_path, 2)
    shutil.copy(tmp_path / "last.safetensors", tmp_path / "epoch2.safetensors")
    good = rows(tmp_path)
    path = tmp_path / "history.csv"
    if damage == "older_ckpt":  # the run went on to epoch 4; resume from epoch 2
        train(tmp_path, 4, resume_from=tmp_path / "last.safetensors")
    else:
        text = path.read_text()
        path.write_text(
            {
                "extra_rows": text + text.splitlines(keepends=True)[-1] * 2,
                "partial_row": text + "3,0.5,0.",
                "missing_row": "".join(text.splitlines(keepends=True)[:-1]),
            }[damage]
        )
    train(tmp_path, 3, resume_from=tmp_path / "epoch2.safetensors")
    got = rows(tmp_path)
    assert got[:3] == good and [r[0] for r in got[1:]] == ["1", "2", "3"]
    assert all(len(r) == len(good[0]) for r in got)


class Boom(Callback):
    def on_batch_end(self, step, logs):
        raise RuntimeError("boom")


def test_a_new_run_leaves_an_old_file_until_its_first_epoch(tmp_path):
    (tmp_path / "history.csv").write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        train(tmp_path, 2, callbacks=[Boom()])
    assert (tmp_path / "history.csv").read_text() == "old\n"
    train(tmp_path, 1)
    assert [r[0] for r in rows(tmp_path)] == ["epoch", "1"]


def test_a_resume_that_fails_at_once_has_already_cut_the_file_back(tmp_path):
    train(tmp_path, 2)
    with open(tmp_path / "history.csv", "a") as f:
        f.write("3,0.5,0.5,0.5,0.5,0.01,0.1,1000.0\n")  # a row whose checkpoint never landed
    with pytest.raises(RuntimeError, match="boom"):
        train(tmp_path, 4, resume_from=tmp_path / "last.safetensors", callbacks=[Boom()])
    assert [r[0] for r in rows(tmp_path)] == ["epoch", "1", "2"]
