"""Compiled ReLU forward and backward (numba), used when ``compiled.enabled()``.

``np.maximum(x, 0)`` runs at a fifth of the speed of a copy (it handles NaN element by element):
0.65-1.1 ms for LeNet's first ReLU at batch 256 (1.2 M values), where ``relu_forward`` below
takes 0.17 ms. It keeps ``np.maximum``'s answers exactly: NaN passes through, and -0 and every
negative number (-inf included) become +0.

``relu_backward`` in NumPy needs three passes and two temporaries (the mask, its all-ones form,
the AND); this loop reads ``δy`` and ``y`` once and writes ``δx`` once: 0.6 ms against 1.8 ms for
LeNet's first ReLU at batch 256 (1.2 M values). It selects, it does not multiply, so the result
is bit for bit the NumPy one: a NaN or inf in ``δy`` where ``y <= 0`` gives +0, and ``δy`` passes
through unchanged elsewhere (a -0 stays -0). The NumPy code in ``activations.py`` is the
reference the tests compare this kernel with.
"""

from __future__ import annotations

import numpy as np

from deltanet.compiled import njit


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
