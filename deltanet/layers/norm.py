"""Batch normalisation layers with PyTorch's semantics (``torch.nn.BatchNorm1d/2d/3d``).

Training mode normalises with the batch's statistics and, when ``track_running_stats``, folds
them into ``running_mean`` / ``running_var``:
``running = (1 - momentum) * running + momentum * batch`` (the unbiased batch variance for
``running_var``; ``momentum=None`` gives the cumulative average ``1 / num_batches_tracked``).
Eval mode normalises with the running statistics, or with the batch's when they are not tracked.
The running statistics are buffers, not Parameters: ``buffers()`` lists them for saving and
``load_buffers()`` restores them.

Data-parallel training: ``deltanet.distributed.SyncBatchNorm`` is this layer with the
statistics of the whole global batch; it overrides ``_batch_stats_forward`` and
``_batch_stats_backward``, the two places where the batch's statistics are computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltanet.layers.base import Layer, Parameter
from deltanet.layers.registry import register_layer
from deltanet.layers.validate import SPATIAL_NAMES, check_float_input, check_state_shape
from deltanet.ops.norm import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference,
    batch_norm_inference_backward,
    batch_norm_stats,
)


@register_layer
class BatchNormND(Layer):
    """Batch normalisation over N and the spatial axes, per channel (axis 1).

    Input ``(N, C, *spatial)``, output the same shape and dtype. Subclasses fix the spatial
    ranks they accept; this base class accepts any.

    Raises TypeError or ValueError for a ``num_features`` that is not a positive int, an ``eps`` <=
    0, a ``momentum`` outside [0, 1] (None: cumulative average) or a float dtype expected; when
    running, ValueError for an input whose axis 1 is not ``num_features`` or a training batch with
    one value per channel.
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
    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        gamma, beta = self.affine_params(x.dtype)
        if not self.training and self.track_running_stats:
            running_mean, running_var = self._running_stats()
            y, cache = batch_norm_inference(x, gamma, beta, running_mean, running_var, self.eps)
            return y, (False, cache)
        y, cache, mean, var_unbiased = self._batch_stats_forward(x, gamma, beta)
        if self.track_running_stats:
            self._update_running_stats(mean, var_unbiased)
        return y, (True, cache)

    def _backward(self, dy: np.ndarray, cache: Any, input_grad: bool) -> np.ndarray:
        batch_stats, op_cache = cache
        if batch_stats:
            dx, dgamma, dbeta = self._batch_stats_backward(dy, op_cache)
        else:
            dx, dgamma, dbeta = batch_norm_inference_backward(dy, op_cache)
        if self.affine:
            weight, bias = self._weight_and_bias()
            weight.grad += dgamma
            bias.grad += dbeta
        return dx

    def _batch_stats_forward(
        self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray
    ) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray]:
        """Normalise with the batch's statistics: ``(y, cache, mean, unbiased variance)``.

        The one place that computes them (``SyncBatchNorm`` overrides it with the global batch).
        """
        self._check_values_per_channel(x, x.size // x.shape[1])
        y, cache = batch_norm_forward(x, gamma, beta, self.eps)
        mean, var_unbiased = batch_norm_stats(cache)
        return y, cache, mean, var_unbiased

    def _batch_stats_backward(
        self, dy: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Backward of ``_batch_stats_forward``: ``(dx, dgamma, dbeta)``."""
        return batch_norm_backward(dy, cache)

    def _check_values_per_channel(self, x: np.ndarray, m: int) -> None:
        """PyTorch's check: one value per channel has no variance to normalise by."""
        if m < 2:
            raise ValueError(
                f"{self.label()}: expected more than 1 value per channel when training "
                f"(N * spatial size > 1, over all ranks when synchronised). "
                f"Received: input of shape {x.shape}."
            )

    def affine_params(self, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """gamma and beta in ``dtype`` (the layer's by default); ones and zeros when not affine."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if not self.affine:
            return np.ones(self.num_features, dtype), np.zeros(self.num_features, dtype)
        weight, bias = self._weight_and_bias()
        return weight.data.astype(dtype, copy=False), bias.data.astype(dtype, copy=False)

    def _update_running_stats(self, mean: np.ndarray, var_unbiased: np.ndarray) -> None:
        assert self.num_batches_tracked is not None  # called only when track_running_stats
        self.num_batches_tracked += 1
        m = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
        # In place on the buffers themselves (the locals are the layer's arrays), so they keep
        # their dtype whatever the input's.
        running_mean, running_var = self._running_stats()
        running_mean *= 1 - m
        running_mean += m * mean
        running_var *= 1 - m
        running_var += m * var_unbiased

    # --- the optional state, typed ---------------------------------------------------------
    # weight / bias exist exactly when affine, the running statistics exactly when
    # track_running_stats (both fixed in __init__). These two helpers are called only on the
    # side of those flags where the state exists; they hand it over as non-Optional types.
    def _weight_and_bias(self) -> tuple[Parameter, Parameter]:
        assert self.weight is not None and self.bias is not None, "only when affine"
        return self.weight, self.bias

    def _running_stats(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.running_mean is not None and self.running_var is not None, (
            "only when track_running_stats"
        )
        return self.running_mean, self.running_var

    # --- validation -----------------------------------------------------------------------
    def _expected(self) -> str:
        c = str(self.num_features)
        if self.spatial_ranks is None:
            return f"(N, {c}, *spatial)"
        shapes = ["(" + ", ".join(("N", c, *SPATIAL_NAMES[r])) + ")" for r in self.spatial_ranks]
        return " or ".join(shapes)

    def _check_input(self, x: Any) -> np.ndarray:
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
        self._check_input(np.empty(input_shape, self.dtype))
        return tuple(input_shape)

    # --- buffers and config ---------------------------------------------------------------
    def buffers(self) -> dict[str, np.ndarray]:
        """The running statistics by name (PyTorch's state_dict names); empty when untracked."""
        if not self.track_running_stats:
            return {}
        running_mean, running_var = self._running_stats()
        return {
            "running_mean": running_mean,
            "running_var": running_var,
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
        for name, held in zip(("running_mean", "running_var"), self._running_stats()):
            held[...] = check_state_shape(self, name, held, buffers[name])  # (num_features,)
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


@register_layer
class BatchNorm1D(BatchNormND):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs (``torch.nn.BatchNorm1d``)."""

    spatial_ranks = (0, 1)


@register_layer
class BatchNorm2D(BatchNormND):
    """Batch normalisation of ``(N, C, H, W)`` inputs (``torch.nn.BatchNorm2d``)."""

    spatial_ranks = (2,)


@register_layer
class BatchNorm3D(BatchNormND):
    """Batch normalisation of ``(N, C, D, H, W)`` inputs (``torch.nn.BatchNorm3d``)."""

    spatial_ranks = (3,)
