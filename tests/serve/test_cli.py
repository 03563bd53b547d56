"""``deltanet serve``: its arguments, which model it serves, and that ``import deltanet`` stays
free of the web stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deltanet.cli import serve
from deltanet.cli.common import CliError
from deltanet.cli.main import build_parser, main


def test_arguments_and_defaults():
    args = build_parser().parse_args(["serve"])
    assert (args.model_file, args.host, args.port) == (None, "127.0.0.1", 8000)
    args = build_parser().parse_args(["serve", "m.safetensors", "--host", "0.0.0.0", "--port", "0"])
    assert (args.model_file, args.host, args.port) == ("m.safetensors", "0.0.0.0", 0)


def test_help(capsys):
    assert main(["serve", "--help"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out


def test_the_newest_run_is_served(tmp_path):
    assert serve.newest_model(tmp_path / "runs") is None
    for i, name in enumerate(["b", "a", "c"]):
        path = tmp_path / "runs" / name / "model.safetensors"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "runs" / "d").mkdir()  # a run that has not finished: no model file
    assert serve.newest_model(tmp_path / "runs") == tmp_path / "runs" / "c" / "model.safetensors"
    said = []
    assert serve.resolve_model(None, tmp_path / "runs", said.append).parent.name == "c"
    assert "newest run" in said[0]
    assert serve.resolve_model("x.safetensors", tmp_path / "runs") == Path("x.safetensors")


def test_with_no_run_the_main_job_is_trained_first(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    trained = []

    def fake_train(args):  # the CLI's defaults, quietly, into a new run under runs/
        trained.append(args)
        path = runs / "digits_cnn-digits-1" / "model.safetensors"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        return 0

    monkeypatch.setattr("deltanet.cli.train.run_train", fake_train)
    said = []
    found = serve.resolve_model(None, runs, said.append)
    assert found == runs / "digits_cnn-digits-1" / "model.safetensors"
    args = trained[0]
    assert args.quiet and args.model is None and args.data is None and args.out is None
    assert "training the main job's model first" in said[0]


def test_bad_port_and_bad_model_file(tmp_path, capsys):
    pytest.importorskip("fastapi")
    assert main(["serve", str(tmp_path / "none.safetensors"), "--port", "70000"]) == 2
    assert "--port must be in [0, 65535]" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "none.safetensors")]) == 2
    assert "no model file" in capsys.readouterr().err
    with pytest.raises(CliError):
        serve.run(build_parser().parse_args(["serve", str(tmp_path), "--port", "-1"]))


def test_import_deltanet_does_not_import_the_web_stack():
    code = (
        "import sys, deltanet; from deltanet.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'deltanet.serve.app') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_taken_port_is_one_clear_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CliError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve._listen("127.0.0.1", port)
    free = serve._listen("127.0.0.1", 0)
    assert free.getsockname()[1] > 0
    free.close()
