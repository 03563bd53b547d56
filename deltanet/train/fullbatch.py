"""Full-batch minimisation with ``scipy.optimize``: every parameter as one float64 vector.

The classic digit exercise trains its network with ``fmincg`` (conjugate gradient) on the cost
``J(θ) = loss + λ/(2N) Σ W²`` over the whole training set; ``minimize`` does the same with any
gradient method of ``scipy.optimize.minimize`` ("CG", "L-BFGS-B", "BFGS", ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize

from deltanet.layers.base import Layer, Parameter

Loss = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]
GRADIENT_METHODS = ("CG", "BFGS", "L-BFGS-B", "TNC", "SLSQP", "NEWTON-CG", "TRUST-CONSTR")


def flatten_parameters(model: Layer) -> np.ndarray:
    """All parameters of ``model``, raveled in ``named_parameters`` order: (P,) float64."""
    params = _parameters(model)
    if not params:
        return np.zeros(0)
    return np.concatenate([p.data.ravel() for p in params]).astype(np.float64, copy=False)


def unflatten_parameters(model: Layer, vector: np.ndarray) -> None:
    """Copy ``vector`` (P,) back into the parameters of ``model``, in place, in their dtypes."""
    params = _parameters(model)
    vector = np.asarray(vector)
    total = sum(p.size for p in params)
    if vector.shape != (total,):
        raise ValueError(
            f"unflatten_parameters: expected a vector of shape ({total},) for "
            f"{model.label()}. Received: {vector.shape}."
        )
    offset = 0
    for p in params:
        p.data[...] = vector[offset : offset + p.size].reshape(p.shape)
        offset += p.size


def minimize(
    model: Layer,
    loss: Loss,
    x: np.ndarray,
    y: np.ndarray,
    method: str = "CG",
    maxiter: int = 50,
    l2: float = 0.0,
    callback: Callable[..., Any] | None = None,
) -> scipy.optimize.OptimizeResult:
    """Minimise ``loss(model(x), y) + l2/(2N) Σ W²`` over all parameters with scipy.

    x: (N, ...); ``loss(logits, y) -> (value, dlogits)`` on the whole batch. Only parameters
    named ``weight`` are penalised (not biases). The model runs in float64 while scipy works
    (its parameters are swapped for float64 copies; x is cast); afterwards the parameters hold
    the solution in their original arrays and dtypes, and their ``.grad`` is zero. The model
    keeps its train/eval mode: the cost must be deterministic (no dropout in training mode).
    ``callback`` is passed to scipy. Returns scipy's ``OptimizeResult`` (``x``, ``fun``, ``jac``).

    Raises ValueError for a model without parameters, ``x`` and ``y`` of different lengths, a
    ``method`` that is not one of scipy's gradient methods, a ``maxiter`` below 1 or an ``l2`` that
    is not a finite number >= 0; TypeError for a ``loss`` that is not callable or ``x`` that is not
    a float array.
    """
    _check_arguments(model, loss, x, y, method, maxiter, l2)
    named = list(model.named_parameters())
    penalised = [name.rsplit(".", 1)[-1] == "weight" for name, _ in named]
    params = [p for _, p in named]
    originals = [(p.data, p.grad) for p in params]
    x64, n = np.asarray(x, dtype=np.float64), len(x)

    def cost(theta: np.ndarray) -> tuple[float, np.ndarray]:
        unflatten_parameters(model, theta)
        model.zero_grad()
        value, dlogits = loss(model(x64), y)
        model.backward(dlogits, input_grad=False)
        grads = []
        for p, reg in zip(params, penalised):
            if reg and l2:
                value += l2 / (2 * n) * float(np.sum(p.data * p.data))  # λ/(2N) Σ W²
                p.grad += l2 / n * p.data  # d/dW = λ/N W
            grads.append(p.grad.ravel())
        return float(value), np.concatenate(grads)

    try:
        for p in params:  # scipy works in float64; so does the model meanwhile
            p.data, p.grad = p.data.astype(np.float64), np.zeros(p.shape)
        result = scipy.optimize.minimize(
            cost,
            flatten_parameters(model),
            jac=True,
            method=method,
            callback=callback,
            options={"maxiter": maxiter},
        )
    finally:  # the original arrays come back untouched even when scipy or the loss raises
        for p, (data, grad) in zip(params, originals):
            p.data, p.grad = data, grad
            p.grad[...] = 0
    unflatten_parameters(model, result.x)
    return result


def _parameters(model: Layer) -> list[Parameter]:
    if not isinstance(model, Layer):
        raise TypeError(f"Expected a deltanet Layer. Received: {type(model).__name__}.")
    return model.parameters()


def _check_arguments(model, loss, x, y, method, maxiter, l2) -> None:
    """Validate ``minimize``'s arguments; the errors name the argument and the received value."""
    params = _parameters(model)
    if not params:
        raise ValueError(f"minimize: {model.label()} has no parameters to optimise.")
    if not callable(loss):
        raise TypeError(
            "minimize: loss must be a callable (logits, y) -> (value, dlogits), e.g. "
            f"deltanet.losses.softmax_cross_entropy. Received: {loss!r}."
        )
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating) or x.ndim < 1:
        raise TypeError(f"minimize: x must be a float array (N, ...). Received: {_describe(x)}.")
    if len(np.asarray(y)) != len(x):
        raise ValueError(
            f"minimize: x and y must have the same number of samples. "
            f"Received: {len(x)} and {len(np.asarray(y))}."
        )
    if not isinstance(method, str) or method.upper() not in GRADIENT_METHODS:
        raise ValueError(
            f"minimize: method must be a scipy gradient method, one of {list(GRADIENT_METHODS)}. "
            f"Received: {method!r}."
        )
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"minimize: maxiter must be a positive int. Received: {maxiter!r}.")
    if not isinstance(l2, (int, float)) or isinstance(l2, bool) or not 0 <= l2 < np.inf:
        raise ValueError(f"minimize: l2 must be a finite number >= 0. Received: {l2!r}.")


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__
