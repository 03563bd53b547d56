"""Request bodies -> model inputs: a size-limited read, PNG drawings, JSON arrays; ``ApiError``
names whatever is wrong with them (the server answers it as a 4xx JSON error)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from deltanet.serve.convert import (
    PNG_SIGNATURE,
    ConversionError,
    Frame,
    decode_png,
    drawing_to_input,
)
from deltanet.serve.predictor import Predictor

MAX_BODY = 2 * 1024**2  # bytes of one request: a 280x280 drawing is ~10 KiB, 64 digits ~50 KiB
MAX_EXAMPLES = 64  # examples of one JSON request


class ApiError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message that names the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def read_body(request: Any, limit: int = MAX_BODY) -> bytes:
    """The request's body, refused (413) as soon as it passes ``limit`` bytes: the declared
    Content-Length is checked first, and the bytes are counted as they arrive (a chunked
    upload declares none), so an oversized upload is never held in memory."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(
                400, f"Content-Length must be a number of bytes. Received: {declared!r}."
            )
        if int(declared) > limit:
            raise ApiError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,}.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over the limit of {limit:,} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def uploaded_file(request: Any, body: bytes) -> bytes:
    """The first file of a multipart/form-data body (``curl -F file=@digit.png``)."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    sent = False

    async def replay() -> dict[str, Any]:  # the body already read, offered once more
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as err:  # the multipart parser's own errors: a malformed upload
        raise ApiError(400, f"a malformed multipart upload ({err}).") from None
    for value in form.values():
        if isinstance(value, UploadFile):
            return await value.read()
    raise ApiError(422, "the multipart upload holds no file: send one, e.g. -F file=@digit.png.")


def kind_of(content_type: str, body: bytes) -> str:
    """``"png"``, ``"json"`` or ``"multipart"`` from the Content-Type, else from the bytes."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return "multipart"
    if ctype == "application/json" or (ctype != "image/png" and body[:1] in (b"[", b"{")):
        return "json"
    if ctype == "image/png" or body[:8] == PNG_SIGNATURE:
        return "png"
    raise ApiError(
        415,
        f"expected a PNG image (image/png, or a multipart upload) or a JSON array "
        f"(application/json). Received: Content-Type {content_type or 'none'!r}, "
        f"{len(body)} bytes.",
    )


def png_example(data: bytes, predictor: Predictor) -> tuple[np.ndarray, Frame | None, tuple]:
    """One example (dataset scale) from a PNG: the model's own size is taken as it is; a
    larger image is a drawing, converted by the dataset's recipe. Also returns where the
    input lies on the image (None when taken as it is) and the image's ``(width, height)``."""
    shape = predictor.input_shape
    if data[:8] != PNG_SIGNATURE:
        raise ApiError(415, "not a PNG image (the data does not start with the PNG signature).")
    if len(shape) != 3 or shape[0] != 1:
        raise ApiError(
            422, f"this model takes examples of shape {shape}, not one-channel images: send a "
            "JSON array.",
        )  # fmt: skip
    try:
        img = decode_png(data)
    except ConversionError as err:
        raise ApiError(422, str(err)) from None
    h, w = img.shape
    if (h, w) == shape[1:]:
        return img[None].astype(np.float32), None, (w, h)
    if predictor.recipe is None or h < shape[1] or w < shape[2]:
        raise ApiError(
            422, f"a PNG image of {w}x{h} pixels: this model takes {shape[2]}x{shape[1]} images, "
            f"or drawings at least that large. Send one of those.",
        )  # fmt: skip
    try:
        x, frame = drawing_to_input(img, predictor.recipe, shape)
    except ConversionError as err:
        raise ApiError(422, str(err)) from None
    return x, frame, (w, h)


def _no_constants(name: str) -> float:
    raise ApiError(422, f"the JSON holds {name}: every value must be a finite number.")


def json_examples(data: bytes, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """``(x (N, *shape), batched)`` from a JSON array (or ``{"input": array}``) of one example
    of ``shape`` (a one-channel one may leave out the channel axis) or a batch of them."""
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the body is not valid JSON ({err}).") from None
    if isinstance(value, dict):
        if set(value) != {"input"}:
            raise ApiError(422, f'expected {{"input": array}}. Received keys {sorted(value)}.')
        value = value["input"]
    try:
        x = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ApiError(
            422, f"expected a nested array of numbers of shape {shape} (one example) or "
            f"(N, {', '.join(map(str, shape))}) (a batch); the arrays must be of equal lengths.",
        ) from None  # fmt: skip
    squeezed = shape[1:] if len(shape) > 1 and shape[0] == 1 else None
    if x.shape == shape or (squeezed and x.shape == squeezed):
        x, batched = x.reshape(1, *shape), False
    elif x.shape[1:] == shape or (squeezed and x.ndim == len(shape) and x.shape[1:] == squeezed):
        x, batched = x.reshape(len(x), *shape), True
    else:
        raise ApiError(
            422, f"the model takes examples of shape {shape} (or a batch (N, "
            f"{', '.join(map(str, shape))})). Received an array of shape {x.shape}.",
        )  # fmt: skip
    if not 1 <= len(x) <= MAX_EXAMPLES:
        raise ApiError(422, f"a batch of 1 to {MAX_EXAMPLES} examples. Received {len(x)}.")
    with np.errstate(over="ignore"):  # a value past float32's range becomes inf: named below
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ApiError(422, f"the input holds a value that is not finite in float32 at {where}.")
    return x, batched


def finite_or_none(value: Any) -> Any:
    """Non-finite floats (also inside lists) as None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value
