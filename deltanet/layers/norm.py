"""Batch normalisation layers with PyTorch's semantics (``torch.nn.BatchNorm1d/2d/3d``).

Training mode normalises with the batch's statistics and, when ``track_running_stats``, folds
them into ``running_mean`` / ``running_var``:
``running = (1 - momentum) * running + momentum * batch`` (the unbiased batch variance for
``running_var``; ``momentum=None`` gives the cumulative average ``1 / num_batches_tracked``).
Eval mode normalises with the running statistics, or with the batch's when they are not tracked.
The running statistics are buffers, not Parameters: ``buffers()`` lists them for saving and
``load_buffers()`` restores them.

Data-parallel training (``fit(..., distributed=True)``): by default each rank normalises with
the statistics of its own shard (as PyTorch's ``BatchNorm`` under DDP) and ``fit`` averages the
running statistics over the ranks after each epoch. ``sync_batch_norm=True`` sets ``allreduce``
on every batch-norm layer (a callable that sums an array over the ranks in place, as
``torch.nn.SyncBatchNorm``): the mean and variance are then those of the whole global batch,
and N ranks reach the weights of one process exactly, at the price of three small allreduces
per layer and step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deltanet.layers.base import Layer, Parameter, check_float_input
from deltanet.ops.norm import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference,
    batch_norm_inference_backward,
    batch_norm_stats,
)

_SPATIAL_NAMES = {0: (), 1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


class BatchNormND(Layer):
    """Batch normalisation over N and the spatial axes, per channel (axis 1).

    Input ``(N, C, *spatial)``, output the same shape and dtype. Subclasses fix the spatial
    ranks they accept; this base class accepts any.
    """

    spatial_ranks: tuple[int, ...] | None = None  # None: any number of spatial axes

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self._validate(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.dtype = np.dtype(dtype)
        self.num_features, self.eps = int(num_features), float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = affine, track_running_stats
        c = self.num_features
        self.weight = Parameter(np.ones(c, self.dtype), "weight") if affine else None
        self.bias = Parameter(np.zeros(c, self.dtype), "bias") if affine else None
        self.running_mean = np.zeros(c, self.dtype) if track_running_stats else None
        self.running_var = np.ones(c, self.dtype) if track_running_stats else None
        self.num_batches_tracked = 0 if track_running_stats else None
        # Sums an array over data-parallel ranks in place; None: statistics of this rank's batch.
        self.allreduce: Callable[[np.ndarray], np.ndarray] | None = None

    def _validate(self, num_features, eps, momentum, affine, track_running_stats, dtype) -> None:
        name = type(self).__name__
        try:
            is_float = np.issubdtype(np.dtype(dtype), np.floating)
        except TypeError:
            is_float = False
        if not is_float:
            raise TypeError(f"{name}: dtype must be a float type. Received: dtype={dtype!r}.")
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)):
            raise TypeError(f"{name}: num_features must be an int. Received: {num_features!r}.")
        if num_features < 1:
            raise ValueError(f"{name}: num_features must be positive. Received: {num_features}.")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"{name}: eps must be a positive float. Received: eps={eps!r}.")
        if momentum is not None and (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not 0 <= momentum <= 1
        ):
            raise ValueError(
                f"{name}: momentum must be a float in [0, 1] or None. Received: {momentum!r}."
            )
        for key, flag in (("affine", affine), ("track_running_stats", track_running_stats)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name}: {key} must be a bool. Received: {key}={flag!r}.")

    # --- forward / backward ---------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        gamma, beta = self._affine(x.dtype)
        if not self.training and self.track_running_stats:
            y, cache = batch_norm_inference(
                x, gamma, beta, self.running_mean, self.running_var, self.eps
            )
            self._cache = (False, cache)
            return y
        if self.allreduce is not None:
            y, cache = sync_batch_norm_forward(x, gamma, beta, self.eps, self.allreduce)
            m = cache[-1]
        else:
            m = x.size // x.shape[1]
        if m < 2:  # PyTorch's check: one value per channel has no variance to normalise by
            raise ValueError(
                f"{self.label()}: expected more than 1 value per channel when training "
                f"(N * spatial size > 1, over all ranks when synchronised). "
                f"Received: input of shape {x.shape}."
            )
        if self.allreduce is None:
            y, cache = batch_norm_forward(x, gamma, beta, self.eps)
            mean, var = batch_norm_stats(cache)
            self._cache = (True, cache)
        else:
            mean, var = cache[3], cache[4] * (m / (m - 1))
            self._cache = ("sync", cache)
        if self.track_running_stats:
            self._update_running_stats(mean, var)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        batch_stats, cache = self._get_cache()
        if batch_stats == "sync":
            dx, dgamma, dbeta = sync_batch_norm_backward(dy, cache)
        else:
            op = batch_norm_backward if batch_stats else batch_norm_inference_backward
            dx, dgamma, dbeta = op(dy, cache)
        if self.affine:
            self.weight.grad += dgamma
            self.bias.grad += dbeta
        return dx

    def _affine(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """gamma and beta in the input's dtype (ones and zeros when not affine)."""
        if not self.affine:
            return np.ones(self.num_features, dtype), np.zeros(self.num_features, dtype)
        return self.weight.data.astype(dtype, copy=False), self.bias.data.astype(dtype, copy=False)

    def _update_running_stats(self, mean: np.ndarray, var_unbiased: np.ndarray) -> None:
        self.num_batches_tracked += 1
        m = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        # In place, so the buffers keep their dtype whatever the input's.
        self.running_mean *= 1 - m
        self.running_mean += m * mean
        self.running_var *= 1 - m
        self.running_var += m * var_unbiased

    # --- validation -----------------------------------------------------------------------
    def _expected(self) -> str:
        c = str(self.num_features)
        if self.spatial_ranks is None:
            return f"(N, {c}, *spatial)"
        shapes = ["(" + ", ".join(("N", c, *_SPATIAL_NAMES[r])) + ")" for r in self.spatial_ranks]
        return " or ".join(shapes)

    def _check(self, x: Any) -> np.ndarray:
        x = check_float_input(self, x)
        ranks = self.spatial_ranks
        rank_ok = x.ndim >= 2 and (ranks is None or x.ndim - 2 in ranks)
        if not rank_ok or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self.label()}: expected input of shape {self._expected()}. Received: {x.shape}."
            )
        return x

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape (validated without running, so a batch of 1 is fine here)."""
        self._check(np.empty(input_shape, self.dtype))
        return tuple(input_shape)

    # --- buffers and config ---------------------------------------------------------------
    def buffers(self) -> dict[str, np.ndarray]:
        """The running statistics by name (PyTorch's state_dict names); empty when untracked."""
        if not self.track_running_stats:
            return {}
        return {
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "num_batches_tracked": np.array(self.num_batches_tracked, dtype=np.int64),
        }

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Restore ``buffers()``'s output (copied into the layer's arrays, keeping their dtype)."""
        expected = set(self.buffers())
        if set(buffers) != expected:
            raise ValueError(
                f"{self.label()}: expected buffers {sorted(expected)}. Received: {sorted(buffers)}."
            )
        if not expected:
            return
        for name in ("running_mean", "running_var"):
            value = np.asarray(buffers[name])
            if value.shape != (self.num_features,):
                raise ValueError(
                    f"{self.label()}: {name} must have shape ({self.num_features},). "
                    f"Received: {value.shape}."
                )
            getattr(self, name)[...] = value
        self.num_batches_tracked = int(buffers["num_batches_tracked"])

    def get_config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
            "dtype": self.dtype.name,
        }

    def _dtype_hint(self) -> np.dtype:
        return self.dtype


def sync_batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, allreduce: Callable
) -> tuple[np.ndarray, tuple]:
    """Batch norm with the statistics of the batch spread over the ranks. x: (N, C, *spatial).

    ``allreduce`` sums an array over the ranks in place. Two passes, as in
    ``batch_norm_forward`` (no cancellation): the global sum and count give the mean, then the
    global sum of squared deviations the biased variance. cache = ``(x_hat, gamma, inv_std,
    mean, var, allreduce, m)`` with ``m`` the global number of values per channel.
    """
    c, axes = x.shape[1], (0, *range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    sums = np.append(x.sum(axis=axes, dtype=np.float64), x.size // c)
    allreduce(sums)
    m = int(sums[c])
    mean = (sums[:c] / max(m, 1)).astype(x.dtype)
    xc = x - mean.reshape(shape)
    squares = np.sum(xc * xc, axis=axes, dtype=np.float64)
    allreduce(squares)
    var = (squares / max(m, 1)).astype(x.dtype)
    inv_std = (1 / np.sqrt(var + eps)).reshape(shape)
    x_hat = xc * inv_std
    gamma = gamma.astype(x.dtype, copy=False)
    y = x_hat * gamma.reshape(shape) + beta.astype(x.dtype, copy=False).reshape(shape)
    return y, (x_hat, gamma, inv_std, mean, var, allreduce, m)


def sync_batch_norm_backward(
    dy: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``sync_batch_norm_forward``: (dx like x, dgamma (C,), dbeta (C,)) of this rank.

    ``dx = (gamma / sigma) * (dy - Dbeta / m - x_hat * Dgamma / m)`` as in
    ``batch_norm_backward``, where ``Dbeta``, ``Dgamma`` and ``m`` run over every rank's batch
    (the mean and variance depend on all of them); dgamma and dbeta stay this rank's sums,
    which the gradient allreduce adds up.
    """
    x_hat, gamma, inv_std, _, _, allreduce, m = cache
    c, axes = dy.shape[1], (0, *range(2, dy.ndim))
    shape = (1, c) + (1,) * (dy.ndim - 2)
    dbeta = dy.sum(axis=axes)
    dgamma = np.sum(dy * x_hat, axis=axes)
    total = np.concatenate([dbeta, dgamma]).astype(np.float64)
    allreduce(total)
    mean_dbeta, mean_dgamma = (total[:c] / m).astype(dy.dtype), (total[c:] / m).astype(dy.dtype)
    centred = dy - mean_dbeta.reshape(shape) - x_hat * mean_dgamma.reshape(shape)
    return centred * (gamma.reshape(shape) * inv_std), dgamma, dbeta


class BatchNorm1D(BatchNormND):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs (``torch.nn.BatchNorm1d``)."""

    spatial_ranks = (0, 1)


class BatchNorm2D(BatchNormND):
    """Batch normalisation of ``(N, C, H, W)`` inputs (``torch.nn.BatchNorm2d``)."""

    spatial_ranks = (2,)


class BatchNorm3D(BatchNormND):
    """Batch normalisation of ``(N, C, D, H, W)`` inputs (``torch.nn.BatchNorm3d``)."""

    spatial_ranks = (3,)
