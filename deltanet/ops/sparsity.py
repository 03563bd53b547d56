"""The KL-divergence sparsity penalty of the sparse autoencoder, forward and backward.

With ``ρ̂_j = (1/N) Σ_n a_nj`` the mean activation of hidden unit ``j`` over the batch and ``ρ``
the target (small, e.g. 0.05), the penalty is

    P = β Σ_j KL(ρ ‖ ρ̂_j),   KL(ρ ‖ ρ̂) = ρ log(ρ/ρ̂) + (1 - ρ) log((1 - ρ)/(1 - ρ̂)),

and its gradient with respect to each activation is the same for every example:

    ∂P/∂a_nj = (β/N) (-ρ/ρ̂_j + (1 - ρ)/(1 - ρ̂_j)),

the term the classic derivation adds to the hidden layer's δ before the sigmoid's σ'.
"""

from __future__ import annotations

import numpy as np


def kl_sparsity_forward(
    a: np.ndarray, rho: float = 0.05, beta: float = 3.0
) -> tuple[np.ndarray, tuple]:
    """``P = β Σ_j KL(ρ ‖ mean_n a_nj)``.

    a: (N, H) activations in (0, 1) (a sigmoid's output) -> P: 0-d array in a's dtype; cache.
    """
    _check(a, rho, beta)
    rho_hat = a.mean(axis=0)
    # KL(ρ‖ρ̂) is infinite at ρ̂ = 0 or 1: a sigmoid never reaches them, so neither do we
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    return np.asarray(beta * kl.sum(), dtype=a.dtype), (rho_hat, a.shape[0], rho, beta)


def kl_sparsity_backward(dy: np.ndarray | float, cache: tuple) -> tuple[np.ndarray]:
    """dy: the scalar ``dL/dP`` -> ``da`` (N, H)."""
    rho_hat, n, rho, beta = cache
    # ∂P/∂ρ̂_j = β (-ρ/ρ̂_j + (1-ρ)/(1-ρ̂_j)), and ∂ρ̂_j/∂a_nj = 1/N for every n
    row = (beta / n) * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    da = np.broadcast_to(np.asarray(dy, dtype=rho_hat.dtype) * row, (n, rho_hat.shape[0]))
    return (np.array(da),)


def _check(a: object, rho: float, beta: float) -> None:
    """Public entry point: a float (N, H) array strictly inside (0, 1), ρ in (0, 1), β >= 0."""
    name = "kl_sparsity_forward"
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        received = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(
            f"{name}: expected a as a floating-point numpy array. Received: {received}."
        )
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(
            f"{name}: expected activations of shape (N, H) with N >= 1. Received: {a.shape}."
        )
    for arg, value in (("rho", rho), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"{name}: {arg} must be a number. Received: {value!r}.")
    if not 0 < rho < 1:
        raise ValueError(f"{name}: rho must be in (0, 1). Received: {rho!r}.")
    if not 0 <= beta < np.inf:
        raise ValueError(f"{name}: beta must be a finite number >= 0. Received: {beta!r}.")
    mean = a.mean(axis=0)
    if not np.all((mean > 0) & (mean < 1)):
        raise ValueError(
            f"{name}: the mean activation of every unit must be in (0, 1) (use a sigmoid's "
            f"output). Received means in [{mean.min()}, {mean.max()}]."
        )
