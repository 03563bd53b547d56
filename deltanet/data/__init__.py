"""Data: datasets and batch iteration, validation, splits, normalisation, the named datasets.

``dataset.py`` holds what a dataset is (``Dataset``) and how its arrays are checked and split;
``pipeline.py`` the mini-batches and the ``Standardizer``; one module per named dataset
(``digits``, ``mnist``, ``mnist1d``, ``volumes``, ``npz`` files) loads it as a ``Dataset``.
``load_dataset`` imports a loader on first use, so ``import deltanet.data`` stays fast
(scikit-learn and mnist1d take about a second each to import).
"""

from __future__ import annotations

import os

from deltanet.data.dataset import (
    MAX_CLASSES,
    SPLIT_SEED,
    DataNote,
    Dataset,
    count_classes,
    data_root,
    split_indices,
    train_val_split,
    validate_arrays,
)
from deltanet.data.pipeline import Standardizer, batches

DATASETS = ("digits", "mnist", "mnist1d", "volumes")

__all__ = [
    "DATASETS",
    "MAX_CLASSES",
    "SPLIT_SEED",
    "DataNote",
    "Dataset",
    "Standardizer",
    "batches",
    "count_classes",
    "data_root",
    "load_dataset",
    "split_indices",
    "train_val_split",
    "validate_arrays",
]


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    download: bool = False,
) -> Dataset:
    """A dataset by name (``DATASETS``) or from a ``.npz`` path, validated, with a test set.

    ``data_dir``: where MNIST's IDX files are (or are downloaded to, with ``download=True``) and
    where MNIST-1D caches its generated arrays; default ``data_root() / name``.
    ``seed`` seeds only the generated *training* examples of ``volumes``; test sets never
    depend on it.
    """
    name = os.fspath(name_or_path)
    if name.lower().endswith(".npz"):
        from deltanet.data.npz import load_npz

        return load_npz(name)
    if name == "digits":
        from deltanet.data.digits import load_digits

        return load_digits()
    if name == "mnist":
        from deltanet.data.mnist import load_mnist

        return load_mnist(data_dir, download=download)
    if name == "mnist1d":
        from deltanet.data.mnist1d import load_mnist1d

        return load_mnist1d(data_dir)
    if name == "volumes":
        from deltanet.data.volumes import load_volumes

        return load_volumes(seed=seed)
    raise ValueError(
        f"Unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}, "
        "or a path to an .npz file with arrays x and y."
    )
