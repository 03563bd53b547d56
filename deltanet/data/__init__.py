"""Data: datasets and batch iteration, validation, splits, normalisation, the named datasets.

``dataset.py`` holds what a dataset is (``Dataset``) and how its arrays are checked and split;
``pipeline.py`` the mini-batches and the ``Standardizer``; one module per named dataset
(``digits``, ``mnist`` and ``fashion_mnist``, ``cifar10``, ``mnist1d``, ``volumes``, ``npz``
files, ``folder``: your own images) loads it as a ``Dataset``; ``download.py`` fetches files
into the cache, ``images.py`` decodes and resizes images.
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

DATASETS = ("digits", "mnist", "mnist1d", "volumes", "fashion_mnist", "cifar10")
# The named datasets of images (N, C, H, W), which image_size resizes.
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")

__all__ = [
    "DATASETS",
    "IMAGE_DATASETS",
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
    image_size: int | str | tuple[int, int] | None = None,
    image_mode: str | None = None,
    bad_images: str = "error",
) -> Dataset:
    """A dataset by name (``DATASETS``), from a ``.npz`` path, or from a folder of images.

    ``data_dir``: where MNIST's, Fashion-MNIST's and CIFAR-10's files are (or are downloaded
    to, with ``download=True``) and where MNIST-1D caches its generated arrays; default
    ``data_root() / name``. ``seed`` seeds only the generated *training* examples of
    ``volumes``; test sets never depend on it.
    ``image_size`` (``28``, ``"28x32"`` as HEIGHTxWIDTH, or a pair) resizes the images of
    ``IMAGE_DATASETS`` and of folders bilinearly; ``image_mode`` ("gray"/"rgb") and
    ``bad_images`` ("error"/"skip") apply to folders (``folder.load_image_folder``).
    Raises ValueError for an unknown name or bad options, FileNotFoundError for missing files.
    """
    from deltanet.data.images import check_mode, parse_image_size

    name = os.fspath(name_or_path)
    size = parse_image_size(image_size)
    check_mode(image_mode)
    if os.path.isdir(os.path.expanduser(name)) and name not in DATASETS:
        from deltanet.data.folder import load_image_folder

        return load_image_folder(
            name, image_size=size, image_mode=image_mode, bad_images=bad_images
        )
    if image_mode is not None:
        raise ValueError(
            f"image_mode applies to folders of images. Received: image_mode={image_mode!r} "
            f"for {name!r}."
        )
    if (
        name not in DATASETS
        and not name.lower().endswith(".npz")
        and ("/" in name or os.sep in name)
    ):
        raise FileNotFoundError(f"No image folder at {name}.")
    ds = _load_named(name, data_dir, seed, download)
    if size is None or size == tuple(ds.input_shape[1:]):
        return ds
    if name not in IMAGE_DATASETS:
        raise ValueError(
            f"image_size resizes images: {', '.join(IMAGE_DATASETS)} or a folder. Received: "
            f"image_size={image_size!r} for {name!r}, examples of shape {tuple(ds.input_shape)}."
        )
    from deltanet.data.images import resize_images

    ds.x_train, ds.x_test = resize_images(ds.x_train, size), resize_images(ds.x_test, size)
    ds.input_shape = ds.x_train.shape[1:]
    return ds


def _load_named(name: str, data_dir, seed: int, download: bool) -> Dataset:
    if name.lower().endswith(".npz"):
        from deltanet.data.npz import load_npz

        return load_npz(name)
    if name == "digits":
        from deltanet.data.digits import load_digits

        return load_digits()
    if name in ("mnist", "fashion_mnist"):
        from deltanet.data.mnist import load_fashion_mnist, load_mnist

        loader = load_mnist if name == "mnist" else load_fashion_mnist
        return loader(data_dir, download=download)
    if name == "cifar10":
        from deltanet.data.cifar10 import load_cifar10

        return load_cifar10(data_dir, download=download)
    if name == "mnist1d":
        from deltanet.data.mnist1d import load_mnist1d

        return load_mnist1d(data_dir)
    if name == "volumes":
        from deltanet.data.volumes import load_volumes

        return load_volumes(seed=seed)
    raise ValueError(
        f"Unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}, a path to an .npz file "
        "with arrays x and y, or a folder of images (one subfolder per class)."
    )
