"""The named datasets behind ``deltanet.data.load_dataset``; each loader returns a ``Dataset``."""

from deltanet.datasets.digits import load_digits
from deltanet.datasets.mnist import download_mnist, load_mnist, read_idx
from deltanet.datasets.mnist1d import load_mnist1d
from deltanet.datasets.npz import load_npz
from deltanet.datasets.volumes import VOLUME_CLASSES, load_volumes, make_volumes

__all__ = [
    "VOLUME_CLASSES",
    "download_mnist",
    "load_digits",
    "load_mnist",
    "load_mnist1d",
    "load_npz",
    "load_volumes",
    "make_volumes",
    "read_idx",
]
