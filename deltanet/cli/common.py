"""What the CLI commands share: defaults, errors, JSON and paths, model files, plots."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

TRAIN_DEFAULTS: dict[str, Any] = {
    "model": None,  # chosen from the data's input shape (default_model)
    "data": "digits",
    "epochs": 15,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 2e-3,
    "lr_policy": "cosine",
    "gamma": None,
    "stepsize": None,
    "stepvalues": None,
    "power": None,
    "max_iter": None,
    "min_lr": None,
    "warmup": 0,
    "weight_decay": None,
    "momentum": None,
    "dropout": None,
    "seed": 0,
    "val_fraction": 0.1,
    "image_size": None,  # "HxW": images resized (--data DIR, digits, mnist, cifar10, ...)
    "image_mode": None,  # --data DIR: "gray" or "rgb" (None: gray when every image is)
    "bad_images": None,  # --data DIR: "error" (None) or "skip" unreadable image files
    "standardize": True,
    "augment": "none",  # training-batch augmentation, a spec like "crop4,flip" (data.augment)
    "recipe": None,  # set, never given: the (model, data) recipe applied (cli.recipes)
}
PLOT_FILES = {
    "history": "learning_curves.png",
    "confusion": "confusion_matrix.png",
    "filters": "filters.png",
    "misclassified": "misclassified.png",
}


class CliError(Exception):
    """Bad command-line input: printed as ``deltanet: error: ...`` with exit status 2."""


def default_model(input_shape: tuple[int, ...]) -> str:
    """The zoo model for per-example ``input_shape``: mlp, cnn1d, digits_cnn/lenet5 or cnn3d."""
    if len(input_shape) == 1:
        return "mlp"
    if len(input_shape) == 2:
        return "cnn1d"
    if len(input_shape) == 3:
        return "lenet5" if min(input_shape[1:]) >= 20 else "digits_cnn"
    if len(input_shape) == 4:
        return "cnn3d"
    raise CliError(f"no zoo model takes examples of shape {input_shape}; give --model.")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (temporary file, fsync, rename)."""
    from deltanet.io.safetensors import atomic_write

    text = json.dumps(obj, indent=2, default=plain) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def plain(obj: Any) -> Any:
    """``json.dumps``'s ``default``: NumPy values as lists and numbers, paths as strings."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file or directory (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return os.path.realpath(a) == os.path.realpath(b)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CliError(f"{str(path)!r} not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"{str(path)!r} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise CliError(f"{str(path)!r} must hold a JSON object.")
    return data


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv (written by CSVLogger) as lists per column, ``epoch`` included."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise CliError(f"no history at {str(path)!r}.") from None
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                raise CliError(f"{str(path)!r}: {key}={value!r} is not a number.") from None
    return columns


def load_model_file(path: str) -> tuple[Any, dict[str, Any]]:
    """``(model, metadata)`` from a model file or a checkpoint; clear errors when it is not one."""
    from deltanet.io import load_checkpoint

    if not os.path.isfile(path):
        raise CliError(f"no model file at {path!r}.")
    ckpt = load_checkpoint(path)  # FormatError (a ValueError) names the file and the problem
    return ckpt.model, dict(ckpt.metadata.get("run", {}))


DOWNLOADABLE = ("mnist", "fashion_mnist", "cifar10")  # the datasets --download fetches


def load_data(data: str, command: str | None, **options: Any) -> Any:
    """``load_dataset(data, **options)``; a missing dataset is a CliError that names the flags
    of ``deltanet command`` that fetch or find its files (None: no hint)."""
    from deltanet.data import load_dataset

    try:
        return load_dataset(data, **options)
    except FileNotFoundError as err:
        hint = ""
        if command is not None and data in DOWNLOADABLE:
            hint = f" (deltanet {command}: --download, or --data-dir DIR)"
        raise CliError(f"{err}{hint}") from None


def standardizer_from(meta: dict[str, Any]) -> Any:
    """The Standardizer a run saved in its model file's metadata, or None."""
    from deltanet.data import Standardizer

    saved = meta.get("standardizer")
    if not saved:
        return None
    try:
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in saved.items()}
        return Standardizer.from_dict(arrays)
    except (AttributeError, ValueError) as err:
        raise CliError(f"the model file's standardizer is invalid: {err}") from None


def standardized(x: np.ndarray, standardizer: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as the model takes it: standardised as in training (``standardizer`` None: as it
    is) and cast to ``dtype`` (None: the transform's). A memory-mapped ``x`` (an image folder's)
    is done a chunk at a time into a memory-mapped file (``data.mapped.mapped_copy``, reused
    when an earlier command wrote it), so its size does not bound what fits in memory."""
    from deltanet.data.mapped import is_mapped, mapped_copy

    if is_mapped(x):
        return mapped_copy(x, standardizer=standardizer, dtype=dtype)
    x = x if standardizer is None else standardizer.transform(x)
    return x if dtype is None else x.astype(dtype, copy=False)


def first_weight(model: Any) -> np.ndarray | None:
    """The first parameter named ``weight`` with at least 2 dims (conv filters, dense rows)."""
    for name, p in model.named_parameters():
        if name.split(".")[-1] == "weight" and p.data.ndim >= 2:
            return p.data
    return None


def make_plots(
    run_dir: Path, history: Any, model: Any, test: tuple | None, names: list | None
) -> list:
    """Write the run's PNG plots; ``test`` is ``(x, y_true, y_pred, cm)`` or None (as the
    class ``names`` are when there is no test set)."""
    from deltanet import plots

    written = [plots.plot_history(history, run_dir / PLOT_FILES["history"])]
    if test is not None:
        x, y_true, y_pred, cm = test
        written.append(plots.plot_confusion_matrix(cm, run_dir / PLOT_FILES["confusion"], names))
        path = run_dir / PLOT_FILES["misclassified"]
        written.append(plots.plot_misclassified(x, y_true, y_pred, path, class_names=names))
    weight = first_weight(model)
    if weight is not None:
        written.append(plots.plot_filters(weight, run_dir / PLOT_FILES["filters"]))
    return written


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{math.floor(seconds / 60)} min"


def parse_shape(text: str) -> tuple[int, ...]:
    """``--input-shape``: "1,28,28" or "1x28x28" -> (1, 28, 28), every size at least 1."""
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,28,28. Received: {text!r}")
    return shape
