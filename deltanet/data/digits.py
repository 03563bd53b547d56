"""The 1,797 8x8 handwritten digits that ship inside scikit-learn (offline, the default)."""

from __future__ import annotations

import numpy as np

from deltanet.data.dataset import SPLIT_SEED, Dataset, split_indices

TEST_FRACTION = 0.2


def load_digits() -> Dataset:
    """Digits: x ``(N, 1, 8, 8)`` float32 in [0, 1], y int64; 1,437 train / 360 test.

    The test set is a stratified 20% drawn with the fixed ``SPLIT_SEED``: the same in every run.
    """
    from sklearn.datasets import load_digits as sk_load_digits  # ~1 s to import: only here

    raw = sk_load_digits()
    # Pixel values are counts 0..16 of the 4x4 blocks of the original 32x32 bitmaps.
    x = (raw.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    y = raw.target.astype(np.int64)
    train, test = split_indices(y, TEST_FRACTION, seed=SPLIT_SEED, stratify=True)
    return Dataset(
        name="digits",
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        num_classes=10,
        input_shape=(1, 8, 8),
        class_names=[str(d) for d in range(10)],
    )
