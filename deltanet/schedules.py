"""Learning-rate policies: pure functions ``policy(it, base_lr, ...) -> lr`` of the iteration.

The formulas are Caffe's (``SGDSolver::GetLearningRate``), with ``it`` the iteration counted
from 0. ``poly`` and ``cosine`` stay at their final value after ``max_iter`` (Caffe's ``poly``
would raise a negative number to a fractional power there). ``make_schedule`` validates the
parameters once and returns a ``Callable[[int], float]`` for the training loop, which sets
``optimizer.lr = schedule(step)`` before each step.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any


def fixed(it: int, base_lr: float) -> float:
    """lr = base_lr.

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    return float(base_lr)


def step(it: int, base_lr: float, gamma: float, stepsize: int) -> float:
    """lr = base_lr · gamma^floor(it / stepsize).

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    return float(base_lr * gamma ** (it // stepsize))


def exp(it: int, base_lr: float, gamma: float) -> float:
    """lr = base_lr · gamma^it.

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    return float(base_lr * gamma**it)


def inv(it: int, base_lr: float, gamma: float, power: float) -> float:
    """lr = base_lr · (1 + gamma · it)^(-power).

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    return float(base_lr * (1 + gamma * it) ** (-power))


def multistep(it: int, base_lr: float, gamma: float, stepvalues: Sequence[int]) -> float:
    """lr = base_lr · gamma^k, k = the number of step values <= it (step values increasing).

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    return float(base_lr * gamma ** sum(1 for s in stepvalues if it >= s))


def poly(it: int, base_lr: float, max_iter: int, power: float) -> float:
    """lr = base_lr · (1 − it / max_iter)^power, and 0 from max_iter on.

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    return float(base_lr * (1 - min(it, max_iter) / max_iter) ** power)


def sigmoid(it: int, base_lr: float, gamma: float, stepsize: int) -> float:
    """lr = base_lr / (1 + e^(−gamma · (it − stepsize))).

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    z = -gamma * (it - stepsize)
    return 0.0 if z > 700 else float(base_lr / (1 + math.exp(z)))  # e^z overflows past ~709


def cosine(it: int, base_lr: float, max_iter: int, min_lr: float = 0.0) -> float:
    """lr = min_lr + (base_lr − min_lr) · (1 + cos(π · it / max_iter)) / 2, then min_lr.

    Raises ValueError for an ``it`` that is not an int >= 0 (``make_schedule`` checks the other
    arguments once).
    """
    it = _check_it(it)
    t = min(it, max_iter) / max_iter
    return float(min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * t)) / 2)


def warmup(
    schedule: Callable[[int], float], warmup_iters: int, start_factor: float = 0.0
) -> Callable[[int], float]:
    """``schedule`` times a factor rising linearly from ``start_factor`` to 1 over warm-up.

    factor(it) = start_factor + (1 − start_factor) · it / warmup_iters for it < warmup_iters,
    else 1 (PyTorch's ``LinearLR``: with start_factor 0 the first step has lr 0).

    Raises ValueError for a ``warmup_iters`` that is not an int >= 0 or a ``start_factor`` outside
    [0, 1].
    """
    warmup_iters = _check_int("warmup", "warmup_iters", warmup_iters, minimum=0)
    start_factor = _check_number("warmup", "start_factor", start_factor, maximum=1.0)

    def warmed_up(it: int) -> float:
        lr = float(schedule(it))
        if it >= warmup_iters:
            return lr
        return lr * (start_factor + (1 - start_factor) * it / warmup_iters)

    return warmed_up


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "fixed": fixed,
    "step": step,
    "exp": exp,
    "inv": inv,
    "multistep": multistep,
    "poly": poly,
    "sigmoid": sigmoid,
    "cosine": cosine,
}
POLICIES: tuple[str, ...] = tuple(_FUNCTIONS)
_WARMUP = ("warmup_iters", "warmup_start_factor")


def make_schedule(policy: str, base_lr: float, **params: Any) -> Callable[[int], float]:
    """The policy ``policy`` with its parameters bound: a function ``it -> lr``.

    Every policy also takes ``warmup_iters`` (and ``warmup_start_factor``, default 0) to wrap
    it in a linear warm-up. Missing, unknown or out-of-range parameters raise a ValueError
    that names the policy.
    """
    if policy not in _FUNCTIONS:
        raise ValueError(f"Unknown lr policy {policy!r}. Valid policies: {list(POLICIES)}.")
    fn = _FUNCTIONS[policy]
    signature = inspect.signature(fn).parameters
    accepted = [name for name in signature if name not in ("it", "base_lr")]
    required = [n for n in accepted if signature[n].default is inspect.Parameter.empty]
    missing = [n for n in required if n not in params]
    unknown = sorted(set(params) - set(accepted) - set(_WARMUP))
    if missing or unknown:
        raise ValueError(
            f"lr policy {policy!r}: takes {accepted} (plus optional {list(_WARMUP)}). "
            f"Missing: {missing}. Unknown: {unknown}."
        )
    base_lr = _check_number(policy, "base_lr", base_lr)
    bound = {name: _check_param(policy, name, value) for name, value in params.items()}
    warm = {k: bound.pop(k) for k in _WARMUP if k in bound}
    schedule = functools.partial(fn, base_lr=base_lr, **bound)
    if warm.get("warmup_iters"):
        return warmup(schedule, warm["warmup_iters"], warm.get("warmup_start_factor", 0.0))
    return schedule


def _check_param(policy: str, name: str, value: Any) -> Any:
    """One parameter of ``policy``, checked and normalised (ints, floats, a tuple of ints)."""
    if name in ("stepsize", "max_iter"):
        minimum = 0 if (name, policy) == ("stepsize", "sigmoid") else 1
        return _check_int(policy, name, value, minimum)
    if name == "warmup_iters":
        return _check_int(policy, name, value, 0)
    if name == "stepvalues":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
            raise ValueError(
                f"lr policy {policy!r}: stepvalues must be a non-empty list of iterations. "
                f"Received: {value!r}."
            )
        values = tuple(_check_int(policy, "stepvalues", v, 0) for v in value)
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(
                f"lr policy {policy!r}: stepvalues must increase. Received: {list(values)}."
            )
        return values
    if name == "warmup_start_factor":
        return _check_number(policy, name, value, maximum=1.0)
    if name == "gamma" and policy in ("step", "exp", "multistep"):
        value = _check_number(policy, name, value)
        if value == 0:
            raise ValueError(f"lr policy {policy!r}: gamma must be > 0. Received: {value!r}.")
        return value
    # gamma of inv/sigmoid, power, min_lr: finite; power and min_lr also >= 0
    lowest = -math.inf if (policy, name) == ("sigmoid", "gamma") else 0.0
    return _check_number(policy, name, value, minimum=lowest)


def _check_number(
    policy: str, name: str, value: Any, minimum: float = 0.0, maximum: float = math.inf
) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not minimum <= value <= maximum:
        bounds = f">= {minimum}" if maximum == math.inf else f"in [{minimum}, {maximum}]"
        raise ValueError(
            f"lr policy {policy!r}: {name} must be a finite number {bounds}. Received: {value!r}."
        )
    return float(value)


def _check_int(policy: str, name: str, value: Any, minimum: int) -> int:
    """An int >= minimum; an integral float (from JSON or a command line) is accepted."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value != int(value) or value < minimum:
        raise ValueError(
            f"lr policy {policy!r}: {name} must be an integer >= {minimum}. Received: {value!r}."
        )
    return int(value)


def _check_it(it: int) -> int:
    """The iteration as a Python int (so results are Python floats, never NumPy scalars)."""
    if isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 0:
        raise ValueError(f"The iteration must be an int >= 0. Received: {it!r}.")
    return int(it)
