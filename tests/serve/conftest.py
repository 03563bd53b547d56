"""Fixtures of the playground's tests: one trained digits model per session, the app on the
ASGI test client, the app on a real uvicorn server, and the drawings of a "1" and a "0"."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import pytest

# The ASGI test client of this starlette warns that it will want httpx2 one day.
QUIET = pytest.mark.filterwarnings("ignore:.*httpx2")

PAD = 280  # the page's drawing pad, in pixels
BRUSH = round(PAD / 9)  # the page's brush


def draw_png(kind: str, size: int = PAD) -> bytes:
    """A drawing as the page makes it: white strokes of the page's brush on black."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    k = size / PAD
    if kind == "1":  # one vertical stroke
        d.line([(140 * k, 45 * k), (140 * k, 235 * k)], fill=255, width=round(BRUSH * k))
    elif kind == "0":  # a loop
        d.ellipse([85 * k, 45 * k, 195 * k, 235 * k], outline=255, width=round(BRUSH * k))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> Path:
    """The main job's model (digits_cnn on the 8x8 digits), trained for 8 epochs in-process
    through the CLI's own train path: ~98% on the test digits."""
    from deltanet.cli.main import build_parser
    from deltanet.cli.train import run_train

    out = tmp_path_factory.mktemp("serve") / "main"
    args = build_parser().parse_args(["train", "--quiet", "--epochs", "8", "--out", str(out)])
    assert run_train(args) == 0
    return out / "model.safetensors"


@pytest.fixture(scope="session")
def predictor(trained_model):
    from deltanet.cli.common import load_model_file
    from deltanet.serve.predictor import Predictor

    model, meta = load_model_file(str(trained_model))
    return Predictor(model, meta, source=str(trained_model))


@pytest.fixture(scope="session")
def digits_test():
    """The test split of the digits (dataset scale) and its labels."""
    from deltanet.data import load_dataset

    ds = load_dataset("digits")
    return ds.x_test, ds.y_test


@pytest.fixture
def client(predictor, tmp_path):
    from fastapi.testclient import TestClient

    from deltanet.serve.app import create_app

    with TestClient(create_app(predictor, runs_dir=tmp_path / "runs")) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(predictor, tmp_path_factory):
    """The app on a real uvicorn server on a free port of 127.0.0.1, in a thread:
    ``(base_url, runs_dir)``."""
    import uvicorn

    from deltanet.serve.app import create_app

    runs = tmp_path_factory.mktemp("live") / "runs"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # the port is ours from here on: no race for a free one
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(predictor, runs_dir=runs), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", runs
    server.should_exit = True
    thread.join(10)
    sock.close()
