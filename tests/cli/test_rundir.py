"""Run directories: made exclusively (unique even within one second), claimed once, and
removed again after a run that failed before its first checkpoint."""

from __future__ import annotations

import threading

import pytest

from deltanet.cli import rundir
from deltanet.cli.common import CliError


def test_runs_started_in_the_same_second_get_a_directory_each(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt: "20250101-120000")
    made, start = [], threading.Barrier(8)

    def make() -> None:
        start.wait()
        made.append(rundir.new_run_dir("mlp", "/data/tiny.npz", root=tmp_path / "runs"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(p.name for p in made)
    assert len(set(names)) == 8 and all(p.is_dir() for p in made)
    assert "mlp-tiny-20250101-120000" in names and "mlp-tiny-20250101-120000-8" in names


def test_a_second_claim_of_the_same_out_is_refused(tmp_path, monkeypatch):
    config = {"model": "mlp", "data": "digits", "epochs": 1}
    first = rundir.NewRun()
    out = first.claim(tmp_path / "a" / "run", config)
    assert first.made and first.owned and (out / "config.json").is_file()
    with pytest.raises(CliError, match="not empty"):
        rundir.NewRun().claim(out, config)
    # a second run that checked --out before the first one claimed it
    monkeypatch.setattr(rundir, "check_out_dir", lambda out: None)
    second = rundir.NewRun()
    with pytest.raises(CliError, match="another run started in it meanwhile"):
        second.claim(out, config)
    second.discard()  # the first run's files are not the second's to remove
    assert (out / "config.json").is_file()


@pytest.mark.parametrize("exists", [False, True])
def test_discard_removes_only_what_an_unstarted_run_wrote(tmp_path, exists):
    out = tmp_path / "run"
    if exists:
        out.mkdir()
    claim = rundir.NewRun()
    claim.claim(out, {"epochs": 1})
    (out / "checkpoints").mkdir()
    (out / "history.csv").write_text("epoch\n")
    claim.discard()
    assert list(out.iterdir()) == [] if exists else not out.exists()


def test_discard_keeps_a_run_that_has_a_checkpoint_or_foreign_files(tmp_path):
    claim = rundir.NewRun()
    out = claim.claim(tmp_path / "run", {"epochs": 1})
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.safetensors").write_bytes(b"x")
    claim.discard()
    assert (out / "config.json").is_file()
    (out / "checkpoints" / "last.safetensors").unlink()
    (out / "notes.txt").write_text("not the run's")
    claim.discard()
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
