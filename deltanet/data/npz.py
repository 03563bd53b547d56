"""Any ``.npz`` file of arrays ``x`` and ``y`` (optionally ``x_test``, ``y_test``, ``class_names``).

Layout: ``x`` is stored exactly as the model takes it, channels first: ``(N, F)`` features,
``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``; no channel axis is guessed (a 3-D
``(N, 28, 28)`` would be read as 28 channels of length 28: save grayscale images as
``x[:, None]``). ``uint8`` values are scaled by 1/255 to [0, 1]; any other real dtype is cast
to float32 as is. ``y`` holds class indices ``0 .. K-1`` (integers, or floats with whole
values). Without ``x_test``/``y_test`` a stratified 20% is held out with the fixed
``SPLIT_SEED``. ``class_names`` (optional) is a 1-D array of K strings.
Loaded with ``allow_pickle=False``: a file that needs pickle is rejected.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from deltanet.data.dataset import SPLIT_SEED, Dataset, split_indices, validate_arrays

KNOWN_KEYS = ("x", "y", "x_test", "y_test", "class_names")
TEST_FRACTION = 0.2


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"Dataset file not found: {path}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive (save one with numpy.savez).")
    try:
        with np.load(path, allow_pickle=False) as f:
            unknown = sorted(set(f.files) - set(KNOWN_KEYS))
            if unknown:
                raise ValueError(
                    f"{path}: unexpected arrays {unknown}. Expected x, y and optionally "
                    "x_test, y_test, class_names."
                )
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e}).") from e
    except ValueError as e:
        if "pickle" in str(e):  # object arrays: numpy refuses them without pickle
            raise ValueError(f"{path}: holds object arrays, which need pickle: refused.") from e
        raise


def _features(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    return x.astype(np.float32)


def load_npz(path: str | os.PathLike) -> Dataset:
    """A validated Dataset from an ``.npz`` file; ValueError naming the file if anything is off."""
    path = Path(path).expanduser()
    arrays = _read(path)
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: missing array {key!r}. Found: {sorted(arrays)}.")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path}: x_test and y_test must come together. Found: {sorted(arrays)}.")
    x, y = arrays["x"], arrays["y"]
    validate_arrays(x, y, where=f"{path} (x, y)")
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        validate_arrays(x_test, y_test, where=f"{path} (x_test, y_test)")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"{path}: x_test examples have shape {x_test.shape[1:]} but x examples have "
                f"shape {x.shape[1:]}: they must match."
            )
    else:
        train, test = split_indices(y, TEST_FRACTION, seed=SPLIT_SEED, stratify=True)
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    num_classes = int(max(y.max(), y_test.max())) + 1
    class_names = _class_names(arrays.get("class_names"), num_classes, path)
    num_classes = len(class_names)
    return Dataset(
        name=path.stem,
        x_train=_features(x),
        y_train=y.astype(np.int64),
        x_test=_features(x_test),
        y_test=y_test.astype(np.int64),
        num_classes=num_classes,
        input_shape=x.shape[1:],
        class_names=class_names,
    )


def _class_names(names: np.ndarray | None, num_classes: int, path: Path) -> list[str]:
    if names is None:
        return [str(k) for k in range(num_classes)]
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < num_classes:
        raise ValueError(
            f"{path}: class_names must be a 1-D array of at least {num_classes} strings "
            f"(the labels go up to {num_classes - 1}). Received {names.dtype} {names.shape}."
        )
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
