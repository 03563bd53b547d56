"""Weight initialisers, each seeded by a ``numpy.random.Generator``.

``fan_in`` / ``fan_out`` follow PyTorch: for a weight of shape ``(out, in, *kernel)`` they are
``in * prod(kernel)`` and ``out * prod(kernel)``. ``torch_default`` reproduces what a fresh
``torch.nn.Conv*d`` or ``torch.nn.Linear`` draws (kaiming_uniform with ``a = sqrt(5)``, i.e.
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, for weights and biases alike), so a fresh deltanet model
starts from the same distribution as a fresh PyTorch one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RngLike = np.random.Generator | int | None


def as_rng(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator, a seed, or ``None`` (fresh entropy).

    Raises TypeError for anything else.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be a numpy.random.Generator, an int seed or None. Received: {rng!r}."
    )


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shaped ``(out, in, *kernel)`` (PyTorch's convention).

    Raises ValueError for a shape with fewer than 2 axes.
    """
    if len(shape) < 2:
        raise ValueError(
            f"fans need a weight with at least 2 dims. Received shape: {tuple(shape)}."
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def zeros(shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """An array of zeros of ``shape`` and ``dtype`` (for biases and batch-norm shifts)."""
    return np.zeros(shape, dtype=dtype)


def uniform(
    shape: Sequence[int], low: float, high: float, rng: RngLike = None, dtype=np.float32
) -> np.ndarray:
    """``U(low, high)`` of ``shape``, drawn from ``rng`` (a Generator, a seed or None), in
    ``dtype``. Raises TypeError for an ``rng`` of another kind (``as_rng``)."""
    return as_rng(rng).uniform(low, high, size=tuple(shape)).astype(dtype)


def normal(
    shape: Sequence[int], std: float, mean: float = 0.0, rng: RngLike = None, dtype=np.float32
) -> np.ndarray:
    """``N(mean, std²)`` of ``shape``, drawn from ``rng`` (a Generator, a seed or None), in
    ``dtype``. Raises TypeError for an ``rng`` of another kind (``as_rng``)."""
    return (mean + std * as_rng(rng).standard_normal(tuple(shape))).astype(dtype)


def glorot_uniform(
    shape: Sequence[int], rng: RngLike = None, gain: float = 1.0, dtype=np.float32
) -> np.ndarray:
    """Xavier/Glorot: ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Raises ValueError for a shape with fewer than 2 axes.
    """
    fan_in, fan_out = fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a, rng, dtype)


def glorot_normal(
    shape: Sequence[int], rng: RngLike = None, gain: float = 1.0, dtype=np.float32
) -> np.ndarray:
    """Xavier/Glorot: ``N(0, s²)``, ``s = gain * sqrt(2 / (fan_in + fan_out))``, for a weight
    shaped ``(out, in, *kernel)``. Raises ValueError for a shape with fewer than 2 axes."""
    fan_in, fan_out = fans(shape)
    return normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng=rng, dtype=dtype)


def he_uniform(shape: Sequence[int], rng: RngLike = None, dtype=np.float32) -> np.ndarray:
    """He/Kaiming for ReLU: ``U(-b, b)``, ``b = sqrt(6 / fan_in)``.

    Raises ValueError for a shape with fewer than 2 axes.
    """
    b = math.sqrt(6.0 / fans(shape)[0])
    return uniform(shape, -b, b, rng, dtype)


def he_normal(shape: Sequence[int], rng: RngLike = None, dtype=np.float32) -> np.ndarray:
    """He/Kaiming for ReLU: ``N(0, s²)``, ``s = sqrt(2 / fan_in)``, for a weight shaped
    ``(out, in, *kernel)``. Raises ValueError for a shape with fewer than 2 axes."""
    return normal(shape, math.sqrt(2.0 / fans(shape)[0]), rng=rng, dtype=dtype)


def epsilon_uniform(
    l_in: int, l_out: int, rng: RngLike = None, epsilon: float | None = None, dtype=np.float32
) -> np.ndarray:
    """The digit exercise: ``U(-e, e)``, shape ``(l_out, l_in)``, ``e = sqrt(6/(l_in+l_out))``.

    Pass ``epsilon`` to fix it (the exercise uses 0.12 for 400-25-10).
    """
    e = math.sqrt(6.0) / math.sqrt(l_in + l_out) if epsilon is None else epsilon
    return uniform((l_out, l_in), -e, e, rng, dtype)


def torch_default(
    shape: Sequence[int], fan_in: int, rng: RngLike = None, dtype=np.float32
) -> np.ndarray:
    """PyTorch's draw for Conv/Linear weights and biases: U(-b, b) with b = 1/sqrt(fan_in).

    Raises TypeError for an ``rng`` that is not a Generator, a seed or None.
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(shape, -bound, bound, rng, dtype)
