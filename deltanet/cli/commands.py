"""``deltanet evaluate | predict | summary | gradcheck | plot``: each returns an exit status."""

from __future__ import annotations

import argparse
import math
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from deltanet.cli.common import (
    CliError,
    load_data,
    load_model_file,
    make_plots,
    read_history,
    standardized,
    standardizer_from,
)


def _dataset_for(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """The dataset to evaluate on: ``--data``, else the one the model was trained on, decoded
    as in training (image datasets and folders at the model's input size and mode)."""
    data = args.data or meta.get("data")
    if not data:
        raise CliError("this file does not say which data it was trained on: give --data.")
    size, mode = getattr(args, "image_size", None), getattr(args, "image_mode", None)
    shape = tuple(meta.get("input_shape") or ())
    folder = _is_folder(data)
    if len(shape) == 3 and size is None and (folder or not args.data):
        size = None if _builtin_size(data) == shape[1:] else f"{shape[1]}x{shape[2]}"
    if folder and mode is None and len(shape) == 3 and shape[0] in (1, 3):
        mode = "gray" if shape[0] == 1 else "rgb"
    return load_data(
        data,
        getattr(args, "command", None),  # plot's own Namespace has none: no flags to name
        data_dir=args.data_dir or meta.get("data_dir"),
        seed=int(meta.get("seed", 0)),
        download=args.download,
        image_size=size,
        image_mode=mode,
        bad_images=getattr(args, "bad_images", None) or "error",
    )


def _is_folder(data: str) -> bool:
    """Whether ``data`` names an image folder (not a dataset name, not an .npz file)."""
    from deltanet.data import DATASETS

    return data not in DATASETS and not data.lower().endswith(".npz")


def _builtin_size(data: str) -> tuple[int, ...] | None:
    """The native image size of a named image dataset (None for others and folders)."""
    sizes = {"digits": (8, 8), "mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32)}
    return sizes.get(data)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_PIXELS = 4096 * 4096  # checked in the PNG's header, before anything is decoded
MAX_NPY_BYTES = 512 * 1024**2  # a predict input


def _check_input(
    x: np.ndarray, meta: dict[str, Any], model: Any, source: str = "the input"
) -> np.ndarray:
    """Standardise ``x (N, ...)`` as in training (``common.standardized``: a memory-mapped
    test set a chunk at a time); its example shape must be the model's."""
    expected = meta.get("input_shape")
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        hint = ""
        if len(expected) == 3 and x.ndim == 4 and source.startswith("the test set"):
            if tuple(x.shape[2:]) != tuple(expected[1:]):
                hint += f" Resize the images with --image-size {expected[1]}x{expected[2]}."
            if x.shape[1] != expected[0]:
                hint += f" The model takes {expected[0]} channel(s); the data has {x.shape[1]}."
        raise CliError(
            f"the model takes examples of shape {tuple(expected)}. Received: {source} has "
            f"examples of shape {tuple(x.shape[1:])} (an array of shape {tuple(x.shape)})." + hint
        )
    params = model.parameters()  # a packed model of 1-bit layers only has no float parameter
    dtype = params[0].dtype if params else np.dtype(np.float32)
    return standardized(x, standardizer_from(meta), dtype)


def run_evaluate(args: argparse.Namespace) -> int:
    """Loss and accuracy of a model file on a dataset's held-out test set."""
    from deltanet.train import evaluate

    model, meta = load_model_file(args.model_file)
    ds = _dataset_for(args, meta)
    x = _check_input(ds.x_test, meta, model, source=f"the test set of {ds.name}")
    scores = evaluate(model, "cross_entropy", x, ds.y_test, batch_size=args.batch_size)
    print(f"{args.model_file} on {ds.name} test set ({len(ds.y_test)} examples):")
    for key, value in scores.items():
        print(f"  {key:<9} {value:.4f}")
    return 0


def _png_header(path: Path) -> tuple[int, int, int]:
    """``(width, height, bit depth)`` from a PNG's IHDR chunk, which must come first."""
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != PNG_SIGNATURE:
        raise CliError(f"{path}: not a PNG image (it does not start with the PNG signature).")
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise CliError(f"{path}: a damaged PNG image (no IHDR chunk where the PNG format puts it).")
    width, height, depth = struct.unpack(">IIB", head[16:25])
    if width * height > MAX_PNG_PIXELS or 0 in (width, height):
        raise CliError(
            f"{path}: a PNG image of {width}x{height} pixels, which deltanet does not read "
            f"(from 1 to {MAX_PNG_PIXELS:,} pixels, e.g. 4096x4096): resize it first."
        )
    return width, height, depth


def _read_png(path: Path, shape: tuple[int, ...], invert: str) -> np.ndarray:
    """A PNG as one example of ``shape`` ((C, H, W), or (F,) with F a square): values in [0, 1].

    Dark ink on light paper is inverted (``invert="auto"`` when the mean is above 0.5), as the
    training digits are light strokes on black. 16-bit images keep their 16 bits.
    """
    from PIL import Image

    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        size, channels = (side, side), 1
    elif len(shape) == 3 and shape[0] in (1, 3):
        size, channels = (shape[2], shape[1]), shape[0]
    else:
        raise CliError(f"a PNG input needs a model of images (1 or 3, H, W). It takes {shape}.")
    _png_header(path)
    try:
        with Image.open(path) as png:
            if png.mode.startswith("I"):  # 16-bit grayscale: "L" would clip it to 255
                gray = np.asarray(png, dtype=np.float32) / np.float32(65535)
                x = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))
                x = x if channels == 1 else np.repeat(x[..., None], 3, axis=-1)
            else:
                img = png.convert("L" if channels == 1 else "RGB")
                x = np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as err:
        raise CliError(f"{path}: not a readable PNG image ({err}).") from None
    x = x.astype(np.float32).clip(0, 1)
    if invert == "yes" or (invert == "auto" and x.mean() > 0.5):
        x = 1 - x
    x = x[None] if channels == 1 else np.moveaxis(x, -1, 0)
    return x.reshape(shape)


def _as_examples(x: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """``x`` as a batch ``(N, *shape)``: one example, a batch, or either without the channel
    axis of a one-channel model (added, with a note)."""
    if not shape or x.shape[1:] == shape:
        return x
    if x.shape == shape:
        return x[None]
    one_channel = len(shape) > 1 and shape[0] == 1
    if one_channel and x.shape[-len(shape) + 1 :] == shape[1:] and x.ndim < len(shape) + 1:
        x = x[None] if x.ndim == len(shape) - 1 else x
        print(
            f"deltanet: note: {path} holds {len(x)} example(s) of shape {x.shape[1:]}: read "
            f"with a channel axis, as {(len(x), *shape)}.",
            file=sys.stderr,
        )
        return x[:, None]
    dims = ", ".join(map(str, shape))
    raise CliError(
        f"{path} holds an array of shape {x.shape}; the model takes one example of shape "
        f"{shape} or a batch of shape (N, {dims})."
    )


def _read_input(args: argparse.Namespace, meta: dict[str, Any]) -> np.ndarray:
    """The examples ``(N, *input_shape)`` from a .npy (one example or a batch) or a .png."""
    from deltanet.data.npy import read_npy

    path = Path(args.input)
    if not path.is_file():
        raise CliError(f"no input file at {args.input!r}.")
    shape = tuple(meta.get("input_shape") or ())
    folder = _is_folder(str(meta.get("data") or "digits"))
    if folder and len(shape) == 3 and shape[0] in (1, 3) and path.suffix.lower() != ".npy":
        return _read_folder_image(path, shape)
    if path.suffix.lower() == ".png":
        if not shape:
            raise CliError("this model file does not record its input shape: use a .npy input.")
        return _read_png(path, shape, args.invert)[None]
    if path.suffix.lower() != ".npy":
        raise CliError(f"INPUT must be a .npy or .png file. Received: {args.input!r}.")
    try:
        x = read_npy(path, max_bytes=MAX_NPY_BYTES)
    except ValueError as err:
        raise CliError(str(err)) from None
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise CliError(
            f"{args.input}: expected an array of numbers. Received dtype {x.dtype}, shape "
            f"{x.shape}."
        )
    x = _as_examples(x, shape, path)
    x = x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise CliError(f"{args.input}: the input holds NaN or infinite values.")
    return x


def _read_folder_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """An image for a model trained on an image folder, decoded exactly as the folder was
    (same size, mode and filter; no inversion): ``(1, *shape)``."""
    from deltanet.data.images import IMAGE_SUFFIXES, BadImage, decode_image

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise CliError(
            f"INPUT must be an image ({', '.join(IMAGE_SUFFIXES)}) for a model trained on an "
            f"image folder. Received: {str(path)!r}."
        )
    try:
        x = decode_image(path, (shape[1], shape[2]), "gray" if shape[0] == 1 else "rgb")
    except BadImage as err:
        raise CliError(str(err)) from None
    return x[None]


def run_predict(args: argparse.Namespace) -> int:
    """Print the class and the probabilities of each example of INPUT."""
    from deltanet.train import predict

    model, meta = load_model_file(args.model_file)
    x = _check_input(_read_input(args, meta), meta, model)
    classes, probs = predict(model, x)
    k = probs.shape[1]
    names = [str(c) for c in meta.get("class_names") or range(k)]
    for i, (c, p) in enumerate(zip(classes, probs)):
        prefix = f"example {i}: " if len(classes) > 1 else ""
        print(f"{prefix}class {names[c]} (probability {p[c]:.4f})")
        top = np.argsort(-p, kind="stable")[: min(k, 10)]
        print("  probabilities: " + ", ".join(f"{names[j]}: {p[j]:.4f}" for j in top))
    return 0


def _model_from_args(args: argparse.Namespace) -> tuple[Any, tuple[int, ...]]:
    """A saved model (MODEL_FILE) or a fresh zoo model (--model), with its input shape."""
    from deltanet.zoo import build_model, default_input_shape

    if args.model_file and args.model:
        raise CliError("give MODEL_FILE or --model, not both.")
    if args.input_shape is not None:
        _check_input_shape(args.input_shape)
    if args.model_file:
        model, meta = load_model_file(args.model_file)
        shape = args.input_shape or tuple(meta.get("input_shape") or ())
        if not shape:
            raise CliError("this model file does not record its input shape: give --input-shape.")
        return model, tuple(shape)
    if not args.model:
        raise CliError("give a MODEL_FILE or --model NAME.")
    shape = args.input_shape or default_input_shape(args.model)
    seed = getattr(args, "seed", 0)
    try:
        model = build_model(args.model, input_shape=shape, num_classes=args.num_classes, seed=seed)
    except ValueError as err:
        if args.input_shape is None:
            raise
        default = default_input_shape(args.model)
        hint = (
            f" It has one axis more than {args.model}'s {default}: leave out the batch axis."
            if len(shape) == len(default) + 1
            else ""
        )
        raise CliError(f"--input-shape {_flag_shape(shape)}: {err}{hint}") from None
    return model, shape


def _flag_shape(shape: tuple[int, ...]) -> str:
    return ",".join(map(str, shape))


def _check_input_shape(shape: tuple[int, ...]) -> None:
    """``--input-shape``: one example's shape, within the zoo's budget of values per example."""
    from deltanet.zoo import MAX_INPUT_SIZE

    if math.prod(shape) > MAX_INPUT_SIZE:
        raise CliError(
            f"--input-shape {_flag_shape(shape)} holds {math.prod(shape):,} values per example, "
            f"more than deltanet builds models for ({MAX_INPUT_SIZE:,}, e.g. 1,1024,1024). "
            "--input-shape is one example's shape, without the batch axis."
        )


def run_summary(args: argparse.Namespace) -> int:
    """Each layer's output shape and parameter count, with totals."""
    model, shape = _model_from_args(args)
    model.summary((1, *shape), depth=args.depth)
    return 0


GRADCHECK_MAX_BATCH = 256


def run_gradcheck(args: argparse.Namespace) -> int:
    """Check every parameter's gradient by central differences; status 1 when one disagrees.

    Rows through a straight-through estimator (binary layers) disagree by design: the report
    marks them and says so, and the status is still 1.
    """
    from deltanet.gradcheck import gradcheck
    from deltanet.ops.losses import softmax_cross_entropy

    model, shape = _model_from_args(args)
    if not 1 <= args.batch <= GRADCHECK_MAX_BATCH:
        raise CliError(
            f"--batch must be from 1 to {GRADCHECK_MAX_BATCH} (every parameter costs two passes "
            f"over the batch; a few examples check the gradient as well). Received: {args.batch}."
        )
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, *shape))
    model.eval()  # dropout off: the cost must be a fixed function of the weights
    k = model.output_shape((1, *shape))[1]
    y = rng.integers(0, k, args.batch)
    directional = args.mode == "directional" or (
        args.mode == "auto" and model.num_parameters() > 12_000
    )
    if not (args.eps > 0 and args.tol > 0):
        raise CliError(f"--eps and --tol must be positive. Received: {args.eps}, {args.tol}.")
    report = gradcheck(
        model, x, target_values=y, loss=softmax_cross_entropy, directional=directional,
        eps=args.eps, tol=args.tol,
    )  # fmt: skip
    print(f"{model.num_parameters():,} parameters, {args.batch} random examples of shape {shape}")
    print(report)
    return 0 if report.ok else 1


def run_plot(args: argparse.Namespace) -> int:
    """Re-create a run directory's plots from history.csv, model.safetensors and its data."""
    from deltanet.metrics import confusion_matrix
    from deltanet.train import predict

    run = Path(args.run_dir)
    if not run.is_dir():
        raise CliError(f"no run directory at {args.run_dir!r}.")
    history = read_history(run / "history.csv")
    model, meta = load_model_file(str(run / "model.safetensors"))
    test, names = None, None
    try:
        ds = _dataset_for(argparse.Namespace(data=None, data_dir=None, download=False), meta)
    except (CliError, ValueError, OSError) as err:  # the curves and filters need no data
        print(f"deltanet: warning: no test-set plots: {err}", file=sys.stderr)
    else:
        y_pred, _ = predict(
            model, _check_input(ds.x_test, meta, model, f"the test set of {ds.name}")
        )
        cm = confusion_matrix(ds.y_test, y_pred, ds.num_classes)
        test, names = (ds.x_test, ds.y_test, y_pred, cm), list(ds.class_names)
    for path in make_plots(run, history, model, test, names):
        print(f"wrote {path}")
    return 0
