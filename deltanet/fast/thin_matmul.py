"""``a @ bᵀ`` when the result is small and the contraction long: the weight gradient of a conv.

``∂L/∂W = δy colsᵀ`` contracts over every position of every sample (tens of thousands) into a
small matrix: ``C_out x C*K`` is 6 x 25 for LeNet's first convolution. OpenBLAS splits such a
product badly between its two threads, which then wait on each other; one core's
register-blocked dot products (``thin_matmul_numba.matmul_nt``) run it several times faster. The
plan (``plan.thin_matmul``) says when; otherwise, and without numba, BLAS computes it.
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import plan


def matmul_nt(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for ``a (M, K)`` and ``b (N, K)`` -> ``(M, N)``.

    ``b`` may also be sample-major, ``(S, N, P)`` with ``K = S*P``, contracted over (sample,
    position) as ``a``'s columns run: δy as a layer holds it, so that the weight gradient of a
    first layer needs no transposed copy of δy (the dot products read it in place).
    """
    m, k = a.shape
    b3 = b if b.ndim == 3 else b.reshape(1, *b.shape)
    n = b3.shape[1]
    if b3.shape[0] * b3.shape[2] != k:
        raise ValueError(f"matmul_nt: a is {a.shape}, b is {b.shape}: contraction lengths differ.")
    if plan.thin_matmul(a, b, n):
        from deltanet.fast import thin_matmul_numba  # imports numba: only once it runs

        out = np.zeros((m, n), dtype=a.dtype)
        thin_matmul_numba.matmul_nt(a, b3, out)
        return out
    return a @ b3.transpose(1, 0, 2).reshape(n, k).T
