"""``deltanet serve [MODEL]``: the web playground for a trained model (``deltanet.serve``).

Without MODEL it serves the newest run under ``./runs``; with no run there, it trains the main
job's model first (``deltanet train`` with its defaults), saying so. FastAPI and uvicorn are
imported only here, when the command runs: ``pip install "deltanet[serve]"``.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable
from pathlib import Path

from deltanet.cli.common import CliError

RUNS = Path("runs")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="web playground: draw a digit, see every layer and δ, train live",
        description="Serve a local web page that runs MODEL on what you draw (probabilities, "
        "every layer's output, the saliency map) and trains zoo models live. Without MODEL: "
        "the newest run under ./runs (or, with none, the main job trained first).",
    )
    p.add_argument("model_file", metavar="MODEL", nargs="?", help="a model.safetensors file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="default: 8000")


def newest_model(runs: Path = RUNS) -> Path | None:
    """The ``model.safetensors`` of the most recently written run under ``runs``, or None."""
    found = [p for p in runs.glob("*/model.safetensors") if p.is_file()] if runs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def resolve_model(
    model_file: str | None, runs: Path = RUNS, say: Callable[[str], object] = print
) -> Path:
    """MODEL, or the newest run's model, or the main job's model trained now (``say`` tells
    which)."""
    if model_file:
        return Path(model_file)
    found = newest_model(runs)
    if found is not None:
        say(f"deltanet serve: serving the newest run, {found}")
        return found
    from deltanet.cli.main import build_parser
    from deltanet.cli.train import run_train

    say(f"deltanet serve: no model under {runs}/: training the main job's model first "
        "(deltanet train: digits_cnn on the 8x8 digits, a few seconds)")  # fmt: skip
    started = time.perf_counter()
    run_train(build_parser().parse_args(["train", "--quiet"]))  # a new run under runs/
    found = newest_model(runs)
    if found is None:
        raise CliError(f"training finished but no model.safetensors appeared under {runs}/.")
    say(f"deltanet serve: trained {found} in {time.perf_counter() - started:.1f} s")
    return found


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from deltanet.serve.app import create_app
    except ImportError as err:
        raise CliError(
            f'serve needs FastAPI and uvicorn ({err}): pip install "deltanet[serve]".'
        ) from None
    from deltanet.cli.common import load_model_file
    from deltanet.serve.predictor import Predictor

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be in [0, 65535]. Received: {args.port}.")
    path = resolve_model(args.model_file)
    model, meta = load_model_file(str(path))
    app = create_app(Predictor(model, meta, source=str(path)), runs_dir=RUNS)
    sock = _listen(args.host, args.port)
    port = sock.getsockname()[1]
    print(f"deltanet serve: {path} on http://{args.host}:{port}/ (Ctrl-C stops)")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound here so that a taken port is one clear line (not a log
    record after the model has loaded), and ``--port 0`` tells its number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise CliError(
            f"cannot listen on {host}:{port} ({err.strerror or err}): another server may use "
            "it; choose another --port."
        ) from None
    return sock
