"""Mini-batches of an epoch, and the standardisation fitted on the training set only."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from deltanet.init import RngLike, as_rng


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int. Received: {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}.")


def batches(
    x: np.ndarray,
    y: np.ndarray | None,
    batch_size: int,
    *,
    shuffle: bool = True,
    rng: RngLike = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(x[idx], y[idx])`` mini-batches of ``batch_size`` rows (``y`` may be None).

    With ``shuffle`` one permutation from ``rng`` (a Generator, a seed, or None for fresh
    entropy) orders the epoch; the same Generator state gives the same batches. Without it the
    batches are slices (views) in order. ``drop_last`` skips a final short batch.

    Raises TypeError for a ``batch_size`` that is not an int, ValueError for one below 1 or a ``y``
    of another length than ``x``.
    """
    _check_batch_size(batch_size)
    n = len(x)
    if y is not None and len(y) != n:
        raise ValueError(
            f"x and y must have the same number of examples. Received: {n} and {len(y)}."
        )
    stop = n - n % batch_size if drop_last else n
    order = as_rng(rng).permutation(n) if shuffle else None
    for start in range(0, stop, batch_size):
        idx: slice | np.ndarray
        if order is None:
            idx = slice(start, start + batch_size)
        else:
            idx = order[start : start + batch_size]
        yield x[idx], (None if y is None else y[idx])


# --- normalisation ------------------------------------------------------------------------
class Standardizer:
    """``(x - mean) / std`` with statistics fitted on the training set only.

    Per channel (``axis 1``; mean over the examples and all spatial positions) by default,
    or per feature (every position of an example separately) with ``per_feature=True``.

    ``fit`` raises ValueError for ``x`` without a batch axis; ``transform`` raises ValueError for
    ``x`` whose example shape does not match the statistics.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, x: np.ndarray, *, per_feature: bool = False, eps: float = 1e-8) -> Standardizer:
        """Statistics of ``x (N, C, ...)``: shapes ``(C, 1, ..)`` or ``x.shape[1:]``."""
        if x.ndim < 2:
            raise ValueError(f"Standardizer.fit needs x of shape (N, ...). Received {x.shape}.")
        axes = (0,) if per_feature else (0, *range(2, x.ndim))
        mean = x.mean(axis=axes, dtype=np.float64, keepdims=True)[0]
        std = x.std(axis=axes, dtype=np.float64, keepdims=True)[0]
        # A constant channel (e.g. an always-black border pixel) is shifted but not scaled.
        return cls(mean, np.where(std < eps, 1.0, std))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardised ``x``, same shape and dtype (a float dtype)."""
        try:
            ok = np.broadcast_shapes(x.shape[1:], self.mean.shape) == x.shape[1:]
        except ValueError:
            ok = False
        if x.ndim < 2 or not ok:
            raise ValueError(
                f"Standardizer fitted on examples broadcastable from {self.mean.shape}. "
                f"Received x of shape {x.shape}."
            )
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        return ((x - self.mean.astype(dtype)) / self.std.astype(dtype)).astype(dtype, copy=False)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """``x * std + mean`` in ``x``'s dtype."""
        return (x * self.std.astype(x.dtype) + self.mean.astype(x.dtype)).astype(x.dtype)

    def to_dict(self) -> dict[str, np.ndarray]:
        """``{"mean", "std"}`` float64 arrays, ready to save as tensors."""
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> Standardizer:
        """The Standardizer that ``to_dict`` saved: ``{"mean": array, "std": array}``.

        Raises ValueError for other keys, shapes that differ, non-finite means or a std <= 0.
        """
        if set(d) != {"mean", "std"}:
            raise ValueError(f"Standardizer needs keys 'mean' and 'std'. Received: {sorted(d)}.")
        mean, std = np.asarray(d["mean"]), np.asarray(d["std"])
        if mean.shape != std.shape or not np.all(np.isfinite(mean)) or not np.all(std > 0):
            raise ValueError(
                "Standardizer: mean and std must have the same shape, be finite, std > 0. "
                f"Received shapes {mean.shape} and {std.shape}."
            )
        return cls(mean, std)
