"""``a @ bᵀ`` when the result is small and the contraction long: the weight gradient of a conv.

``∂L/∂W = δy colsᵀ`` contracts over every position of every sample (tens of thousands) into a
small matrix: ``C_out x C*K`` is 6 x 25 for LeNet's first convolution. OpenBLAS splits such a
product badly between its two threads: 0.8-0.9 ms where one core's register-blocked dot products
take 0.24-0.29 ms for LeNet's first convolution at 53 samples, and 8-12 ms instead of 0.9 when the
other core is busy, as the two threads wait on each other. With numba installed these products
run as dot products on one core (``conv_kernels.matmul_nt``); otherwise, and for larger
results, BLAS.
"""

from __future__ import annotations

import numpy as np

from deltanet import compiled

_MAX_OUT = 256  # result cells up to which the dot products win (measured: 150 yes, 2400 no)
_MIN_K = 4096  # contraction length from which they do


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
    if (
        m * n <= _MAX_OUT
        and k >= _MIN_K
        and a.dtype == b.dtype
        and a.dtype in (np.float32, np.float64)
        and a.flags.c_contiguous
        and b.flags.c_contiguous
        and compiled.enabled()
    ):
        from deltanet.ops import conv_kernels  # imports numba: only once compiled kernels run

        out = np.zeros((m, n), dtype=a.dtype)
        conv_kernels.matmul_nt(a, b3, out)
        return out
    return a @ b3.transpose(1, 0, 2).reshape(n, k).T
