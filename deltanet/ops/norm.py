"""Batch normalisation per channel (axis 1), over the batch and every spatial axis.

Inputs are ``(N, C)`` or ``(N, C, *spatial)``; each channel's statistics run over the
``m = N * prod(spatial)`` values it holds.

Training:  ``mu = mean(x)``, ``var = mean((x - mu)^2)`` (biased), ``x_hat = (x - mu) / sigma``
           with ``sigma = sqrt(var + eps)``, and ``y = gamma * x_hat + beta``.
Inference: the same map with running statistics in place of the batch's, i.e. an affine map
           per channel ``y = scale * x + shift``.

The layer needs the batch statistics to update its running averages. Rather than widen the
``(y, cache)`` contract, the training cache keeps them and ``batch_norm_stats(cache)`` reads
them out: the mean and the *unbiased* variance ``var * m / (m - 1)``, which is what PyTorch
folds into ``running_var``.

Every op keeps x's dtype: gamma, beta and the running statistics are cast to it, and only
Python scalars (weak in NumPy's promotion) meet the arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class BatchNormCache(NamedTuple):
    """What ``batch_norm_backward`` and ``batch_norm_stats`` need from a training forward."""

    x_hat: np.ndarray
    gamma: np.ndarray
    inv_std: np.ndarray  # 1 / sqrt(var + eps), shaped (1, C, 1, ...)
    mean: np.ndarray  # (C,)
    var: np.ndarray  # (C,), biased


class BatchNormInferenceCache(NamedTuple):
    """What ``batch_norm_inference_backward`` needs."""

    x: np.ndarray
    gamma: np.ndarray
    running_mean: np.ndarray
    inv_std: np.ndarray  # 1 / sqrt(running_var + eps), (C,)


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """The reduction axes: the batch and every spatial axis."""
    return (0, *range(2, x.ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """A ``(C,)`` vector shaped ``(1, C, 1, ...)`` to broadcast against an ``ndim``-dim input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, BatchNormCache]:
    """Normalise with the batch's statistics. x: (N, C, *spatial); gamma, beta: (C,) -> y like x.

    The cache keeps the batch's mean and biased variance by name (``batch_norm_stats``).
    """
    assert x.ndim >= 2 and gamma.shape == beta.shape == (x.shape[1],), (x.shape, gamma.shape)
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    axes = _axes(x)
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = np.mean(xc * xc, axis=axes, keepdims=True)  # two passes: no cancellation
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = xc * inv_std
    y = x_hat * _per_channel(gamma, x.ndim) + _per_channel(beta, x.ndim)
    return y, BatchNormCache(x_hat, gamma, inv_std, mean.reshape(-1), var.reshape(-1))


def batch_norm_backward(
    dy: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the training forward. dy: like x -> (dx like x, dgamma (C,), dbeta (C,)).

    With ``g = dL/dx_hat = gamma * dy`` and, per channel,
    ``d mu / d x_i = 1/m`` and ``d var / d x_i = 2 (x_i - mu) / m``, one gets
    ``d x_hat_j / d x_i = (delta_ij - 1/m - x_hat_i x_hat_j / m) / sigma``, hence
    ``dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma``. As gamma is constant within a
    channel, ``mean(g) = gamma * dbeta / m`` and ``mean(g * x_hat) = gamma * dgamma / m``:
        dx = (gamma / sigma) * (dy - dbeta / m - x_hat * dgamma / m)
    with ``dgamma = sum(dy * x_hat)`` and ``dbeta = sum(dy)`` over N and the spatial axes.
    """
    x_hat, gamma, inv_std = cache.x_hat, cache.gamma, cache.inv_std
    axes, nd = _axes(dy), dy.ndim
    m = dy.size // dy.shape[1]
    dbeta = dy.sum(axis=axes)
    dgamma = np.sum(dy * x_hat, axis=axes)
    centred = dy - _per_channel(dbeta / m, nd) - x_hat * _per_channel(dgamma / m, nd)
    dx = centred * (_per_channel(gamma, nd) * inv_std)
    return dx, dgamma, dbeta


def batch_norm_stats(cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, unbiased variance)``, each ``(C,)``, of the batch a training forward normalised."""
    m = cache.x_hat.size // cache.x_hat.shape[1]
    if m < 2:
        raise ValueError(
            f"the unbiased variance needs more than 1 value per channel. Received: {m}."
        )
    return cache.mean, cache.var * (m / (m - 1))


def batch_norm_inference(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float = 1e-5,
) -> tuple[np.ndarray, BatchNormInferenceCache]:
    """Normalise with fixed statistics: ``y = scale * x + shift`` per channel. x: (N, C, ...).

    ``scale = gamma / sqrt(running_var + eps)``, ``shift = beta - running_mean * scale``.
    """
    assert x.ndim >= 2 and gamma.shape == running_mean.shape == (x.shape[1],)
    gamma, beta, running_mean, running_var = (
        v.astype(x.dtype, copy=False) for v in (gamma, beta, running_mean, running_var)
    )
    inv_std = 1 / np.sqrt(running_var + eps)
    scale = gamma * inv_std
    shift = beta - running_mean * scale
    y = x * _per_channel(scale, x.ndim) + _per_channel(shift, x.ndim)
    return y, BatchNormInferenceCache(x, gamma, running_mean, inv_std)


def batch_norm_inference_backward(
    dy: np.ndarray, cache: BatchNormInferenceCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the affine inference map. dy: like x -> (dx, dgamma (C,), dbeta (C,)).

    ``dx = dy * gamma / sigma``; ``dgamma = sum(dy * (x - running_mean)) / sigma``;
    ``dbeta = sum(dy)``. The running statistics are constants here (no gradient).
    """
    x, gamma, running_mean, inv_std = cache
    axes, nd = _axes(dy), dy.ndim
    dbeta = dy.sum(axis=axes)
    dgamma = np.sum(dy * (x - _per_channel(running_mean, nd)), axis=axes) * inv_std
    dx = dy * _per_channel(gamma * inv_std, nd)
    return dx, dgamma, dbeta
