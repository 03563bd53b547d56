"""Inverted dropout: zero each value with probability ``p`` and scale the survivors by 1/(1-p).

Forward:  ``mask ~ Bernoulli(1 - p)``, ``y = x * mask / (1 - p)``, so ``E[y] = x`` and nothing
          needs rescaling at inference time (the layer is then the identity).
Backward: ``dx = dy * mask / (1 - p)``: the same mask and scale, since y is linear in x.
"""

from __future__ import annotations

import numpy as np


def dropout_forward(
    x: np.ndarray, p: float, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, tuple]:
    """Drop with probability ``p`` in ``[0, 1)``. x: any shape -> y: same shape and dtype.

    ``rng`` is a Generator (or a seed); ``p = 0`` returns ``x`` itself and draws nothing.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability p must be in [0, 1). Received: p={p!r}.")
    if p == 0:
        return x, (None,)
    rng = np.random.default_rng(rng)  # a Generator passes through unchanged
    keep = rng.random(x.shape, dtype=np.float32) >= np.float32(p)  # P(keep) = 1 - p
    # The scale is computed in x's dtype, as PyTorch divides its noise by 1 - p (rounded to
    # x's dtype): the same factor to the last bit, and never a float64 one for a float32 x.
    scale = x.dtype.type(1) / x.dtype.type(1 - p)
    scaled_mask = keep.astype(x.dtype) * scale
    return x * scaled_mask, (scaled_mask,)


def dropout_backward(dy: np.ndarray, cache: tuple) -> tuple[np.ndarray]:
    """``dx = dy * mask / (1 - p)``. dy: shape of x -> (dx,)."""
    (scaled_mask,) = cache
    if scaled_mask is None:  # p = 0 (or the identity of eval mode)
        return (dy,)
    return (dy * scaled_mask,)
