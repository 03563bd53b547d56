"""MNIST-1D (Greydanus, 2020), generated offline with the ``mnist1d`` package, cached as .npz.

The generator's default arguments (seed 42) give the canonical dataset: 5,000 sequences of
length 40, the first 4,000 for training and the last 1,000 for testing.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from deltanet.data.dataset import Dataset, data_root, validate_arrays
from deltanet.data.npy import read_npz

KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CACHE_BYTES = 1024**3  # the canonical cache holds 0.9 MB


def _generate(num_samples: int) -> dict[str, np.ndarray]:
    """Run mnist1d's generator (never its downloader), leaving the global RNGs as they were."""
    from mnist1d.data import get_dataset_args, make_dataset  # ~1 s to import: only here

    args = get_dataset_args()
    args.num_samples = num_samples
    # make_dataset seeds and draws from the global random / np.random state: restore it after.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return {
        "x_train": d["x"][:, None].astype(np.float32),
        "y_train": d["y"].astype(np.int64),
        "x_test": d["x_test"][:, None].astype(np.float32),
        "y_test": d["y_test"].astype(np.int64),
    }


def _cache_path(directory: Path, num_samples: int) -> Path:
    """Keyed by the package version (which fixes the default arguments) and ``num_samples``.

    Importing mnist1d takes a second; its version from the metadata does not.
    """
    key = {"mnist1d": importlib.metadata.version("mnist1d"), "num_samples": num_samples}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return directory / f"mnist1d-{digest}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing or not a valid cache."""
    try:
        arrays = read_npz(path, max_bytes=MAX_CACHE_BYTES, allowed=KEYS)
        for split in ("train", "test"):
            validate_arrays(arrays[f"x_{split}"], arrays[f"y_{split}"], 10, where=str(path))
        return arrays
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _write_cache(path: Path, arrays: dict[str, Any]) -> None:  # Any: savez's stub
    """Atomic write (temp file + rename); a read-only cache directory is not an error."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_mnist1d(
    data_dir: str | os.PathLike | None = None, *, num_samples: int = 5000, cache: bool = True
) -> Dataset:
    """MNIST-1D: x ``(N, 1, 40)`` float32 (standardised), y int64; 4,000 train / 1,000 test.

    Generation takes a few seconds; the arrays are cached in ``data_dir`` (default
    ``data_root() / "mnist1d"``) under a name keyed by the generator's arguments.
    ``num_samples`` other than 5,000 gives a smaller or larger variant (80% train).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 50:
        raise ValueError(f"num_samples must be an int >= 50. Received: {num_samples!r}.")
    directory = Path(data_dir).expanduser() if data_dir is not None else data_root() / "mnist1d"
    path = _cache_path(directory, num_samples) if cache else None
    arrays = _read_cache(path) if path is not None and path.is_file() else None
    if arrays is None:
        arrays = _generate(num_samples)
        if path is not None:
            _write_cache(path, arrays)
    return Dataset(
        name="mnist1d",
        **arrays,
        num_classes=10,
        input_shape=arrays["x_train"].shape[1:],
        class_names=[str(d) for d in range(10)],
    )
