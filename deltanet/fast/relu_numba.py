"""ReLU forward and backward as one-pass numba loops (``fast/activations.py``).

``np.maximum(x, 0)`` handles NaN element by element and runs at a fraction of a copy's speed;
this loop keeps its answers exactly: NaN passes through, and -0 and every negative number
(-inf included) become +0. The backward loop reads ``δy`` and ``y`` once and writes ``δx``
once, where NumPy needs three passes and two temporaries. It selects, it does not multiply, so
the result is bit for bit ``ops.activations.relu_backward``'s: a NaN or inf in ``δy`` where
``y <= 0`` gives +0, and ``δy`` passes through unchanged elsewhere (a -0 stays -0).
"""

from __future__ import annotations

import numpy as np

from deltanet.fast import njit


@njit
def relu_forward(x, y):  # pragma: no cover - numba
    """``y = max(x, 0)`` as ``np.maximum`` computes it; C-contiguous, one shape and dtype."""
    src, dst = x.ravel(), y.ravel()
    zero = np.zeros(1, dst.dtype)[0]
    for i in range(src.size):
        v = src[i]
        dst[i] = v if v > zero or v != v else zero  # v != v: NaN


@njit
def relu_backward(dy, y, dx):  # pragma: no cover - numba
    """``δx = δy where y > 0, else +0``; all three C-contiguous, of one shape and dtype."""
    src, mask, dst = dy.ravel(), y.ravel(), dx.ravel()
    zero = np.zeros(1, dst.dtype)[0]
    for i in range(src.size):
        dst[i] = src[i] if mask[i] > 0 else zero
