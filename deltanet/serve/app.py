"""The playground's web app (FastAPI): the page, the prediction API and the training API.

Routes: ``GET /`` the page (Draw and Learn); ``GET /api/model`` the summary;
``POST /api/predict`` (PNG or JSON) class and probabilities; ``POST /api/inspect`` (a PNG
drawing) probabilities, every layer's output and the saliency map; ``GET /api/train/options``,
``POST /api/train``, ``POST /api/train/stop``, ``GET /api/train`` and ``GET
/api/train/events`` (Server-Sent Events) for a run started from the page. OpenAPI's schema is
at ``/openapi.json``; the interactive docs are off, as they load their scripts from a CDN.
Errors are JSON ``{"error": message}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from deltanet.serve import training
from deltanet.serve.convert import frame_dict
from deltanet.serve.inputs import (
    MAX_BODY,
    ApiError,
    finite_or_none,
    json_examples,
    kind_of,
    png_example,
    read_body,
    uploaded_file,
)
from deltanet.serve.predictor import Predictor, rounded

STATIC = Path(__file__).parent / "static"
FINAL_EVENTS = ("done", "error")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Playground:
    """What the routes share: the served model, the runs directory, the training job."""

    def __init__(self, predictor: Predictor, runs_dir: Path, max_body: int) -> None:
        self.predictor, self.runs_dir, self.max_body = predictor, Path(runs_dir), max_body
        self.job: training.TrainingJob | None = None
        self.job_lock = threading.Lock()  # one check-and-start at a time
        self._options: dict[str, Any] | None = None

    async def body(self, request: Request) -> tuple[str, bytes]:
        """The body, size-limited, and its kind: ``"json"``, or ``"png"`` (a multipart
        upload's file, or the raw body)."""
        body = await read_body(request, self.max_body)
        kind = kind_of(request.headers.get("content-type", ""), body)
        if kind == "multipart":
            return "png", await uploaded_file(request, body)
        return kind, body

    async def png(self, request: Request) -> tuple[np.ndarray, Any, tuple]:
        """A PNG from the body (raw or multipart) as one example, its frame and its size."""
        kind, body = await self.body(request)
        if kind == "json":
            raise ApiError(415, "expected a PNG image here (image/png or a multipart upload).")
        return png_example(body, self.predictor)

    def options(self) -> dict[str, Any]:
        """The choices of the Learn page (models per dataset found by building them, once)."""
        if self._options is None:
            from deltanet.optim import OPTIMIZERS
            from deltanet.schedules import POLICIES

            data = training.available_datasets()
            self._options = {
                "datasets": {
                    d: {"input_shape": training.DATASET_SHAPES[d],
                        "models": training.compatible_models(d)}
                    for d in data
                },  # fmt: skip
                "optimizers": list(OPTIMIZERS),
                "policies": [p for p in training.POLICY_PARAMS if p in POLICIES],
                "defaults": {"data": "digits", "model": "digits_cnn", "optimizer": "adam",
                             "lr": 2e-3, "lr_policy": "cosine", "epochs": 5, "batch_size": 32},
            }  # fmt: skip
        return self._options

    def start(self, settings: dict[str, Any]) -> training.TrainingJob:
        with self.job_lock:
            job = self.job
            if job is not None and job.running:
                s = job.settings
                raise ApiError(
                    409, f"a training run is in progress ({s['model']} on {s['data']}, "
                    f"{job.run_dir.name}): one run at a time. Stop it or wait for its end.",
                )  # fmt: skip
            self.job = training.TrainingJob(settings, self.runs_dir)
            self.job.start()
            return self.job


def create_app(
    predictor: Predictor, runs_dir: str | Path = "runs", max_body: int = MAX_BODY
) -> FastAPI:
    """The playground for ``predictor``'s model; runs started from the page go to
    ``runs_dir``; request bodies over ``max_body`` bytes are refused (413)."""
    app = FastAPI(title="deltanet playground", docs_url=None, redoc_url=None)
    pg = Playground(predictor, Path(runs_dir), max_body)
    app.state.playground = pg
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _error_handlers(app)
    _prediction_routes(app, pg)
    _training_routes(app, pg)
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error as JSON ``{"error": message}``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, err: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return _error(422, f"bad request parameters ({where}).")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        # a bug, not bad input: still JSON, and the server goes on with the next request
        return _error(500, f"internal error: {type(err).__name__}: {err}")


def _prediction_routes(app: FastAPI, pg: Playground) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/model")
    def model_summary() -> dict[str, Any]:
        """The served model: layers (name, type, output shape, parameters), data, classes."""
        return pg.predictor.summary()

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """Class and probabilities of a PNG (a drawing, or an image of the model's input size)
        or of a JSON array (one example, dataset scale, or a batch of them)."""
        kind, body = await pg.body(request)
        if kind == "json":
            x, batched = json_examples(body, pg.predictor.input_shape)
        else:
            x, batched = png_example(body, pg.predictor)[0][None], False
        probs = await run_in_threadpool(pg.predictor.predict, x)
        names = pg.predictor.names(probs.shape[1])
        answers = [
            {"class": int(np.argmax(p)), "label": names[int(np.argmax(p))],
             "probabilities": rounded(p, 6)}
            for p in probs
        ]  # fmt: skip
        return {"predictions": answers} if batched else answers[0]

    @app.post("/api/inspect")
    async def inspect(request: Request) -> dict[str, Any]:
        """A drawing (PNG): probabilities, each layer's output, the saliency map, the model's
        input (dataset scale) and where it lies on the drawing."""
        x, frame, (w, h) = await pg.png(request)
        result = await run_in_threadpool(pg.predictor.inspect, x)
        result["input"] = rounded(x[0], 4)  # (H, W): drawings are one-channel images
        result["frame"] = frame_dict(frame) if frame else {"left": 0, "top": 0, "width": w,
                                                           "height": h}  # fmt: skip
        return result


def _training_routes(app: FastAPI, pg: Playground) -> None:
    @app.get("/api/train/options")
    def train_options() -> dict[str, Any]:
        """Datasets (with their models), optimizers, policies and defaults of the Learn page."""
        return pg.options()

    @app.post("/api/train", status_code=202)
    async def train(request: Request) -> dict[str, Any]:
        """Start a run (one at a time: 409 while one is running); its events stream from
        ``/api/train/events``."""
        body = await read_body(request, 64 * 1024)
        try:
            settings = training.parse_settings(json.loads(body or b"{}"), pg.options())
        except (ValueError, UnicodeDecodeError) as err:
            raise ApiError(400, f"bad training settings: {err}") from None
        job = await run_in_threadpool(pg.start, settings)
        return {"run_dir": str(job.run_dir), "settings": settings}

    @app.post("/api/train/stop", status_code=202)
    def stop() -> dict[str, Any]:
        """Ask the running job to stop after its current epoch."""
        job = pg.job
        if job is None or not job.running:
            raise ApiError(409, "no training run is in progress.")
        job.stop_requested.set()
        return {"stopping": True, "run_dir": str(job.run_dir)}

    @app.get("/api/train")
    def status() -> dict[str, Any]:
        """The current (or last) run: running or not, its directory and event count."""
        job = pg.job
        if job is None:
            return {"running": False, "run_dir": None, "events": 0}
        return {"running": job.running, "run_dir": str(job.run_dir), "events": len(job.events),
                "settings": job.settings}  # fmt: skip

    @app.get("/api/train/events")
    async def events(request: Request, since: int = 0) -> StreamingResponse:
        """The run's events from number ``since`` on, as Server-Sent Events, until it ends."""
        job = pg.job
        if job is None:
            raise ApiError(404, "no training run has been started.")
        last = request.headers.get("last-event-id", "")
        start = max(since, int(last) if last.isdigit() else 0)
        return StreamingResponse(_stream(job, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip


async def _stream(job: training.TrainingJob, i: int) -> Any:
    """Yield ``job``'s events from index ``i``: each as ``id: n`` and a JSON ``data:`` line."""
    quiet = 0
    while True:
        while i < len(job.events):
            event = job.events[i]
            i += 1
            data = json.dumps({k: finite_or_none(v) for k, v in event.items()})
            yield f"id: {i}\ndata: {data}\n\n"
            if event["type"] in FINAL_EVENTS:
                return
        if not job.running and i >= len(job.events):
            return
        await asyncio.sleep(0.05)
        quiet += 1
        if quiet % 200 == 0:  # a comment every ~10 s keeps proxies from closing the stream
            yield ": keep-alive\n\n"
