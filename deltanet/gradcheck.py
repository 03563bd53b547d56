"""Numerical gradient checking by central differences in float64.

``gradcheck`` compares the hand-derived gradients of an op, a layer or a whole model with a loss
against ``(f(θ + ε) - f(θ - ε)) / 2ε``, and reports, per input and per parameter, the relative
difference ``||num - ana|| / ||num + ana||`` (the classic exercise's measure; below 1e-9 means
the backward pass is right) and the largest absolute error. For big tensors the directional mode
compares one random direction ``v`` instead: ``(f(θ + εv) - f(θ - εv)) / 2ε`` against ``ana · v``.

Layers whose ``straight_through`` attribute is true (the quantized layers of ``deltanet.binary``)
have, by design, a backward pass that is not the derivative of their forward: sign and rounding
have derivative 0 almost everywhere, and the straight-through estimator passes the gradient of a
surrogate instead. The rows such a layer reaches (its own and every one before it) are marked,
and the report says in words that their failure is expected.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deltanet.layers.base import Layer


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps`` for every element of ``x``.

    ``f`` takes no argument and reads ``x`` (which is perturbed in place and restored), so it
    can check an input, a layer's weight or any array the computation closes over.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x) or x.size == 0, "numerical_gradient needs a contiguous array"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(f())
        flat[i] = old - eps
        minus = float(f())
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def relative_difference(num: np.ndarray, ana: np.ndarray) -> float:
    """``||num - ana|| / ||num + ana||`` (0 when both are zero)."""
    den = np.linalg.norm(num + ana)
    return float(np.linalg.norm(num - ana) / den) if den > 0 else float(np.linalg.norm(num - ana))


@dataclass
class GradcheckRow:
    name: str
    shape: tuple[int, ...]
    rel_diff: float
    max_abs_err: float
    straight_through: bool = False  # a straight-through estimator lies on its gradient's path


@dataclass
class GradcheckReport:
    """One row per checked array; ``ok`` when every relative difference is below ``tol``."""

    rows: list[GradcheckRow] = field(default_factory=list)
    tol: float = 1e-7
    directional: bool = False
    straight_through: list[str] = field(default_factory=list)  # those layers, e.g. "2 (QConv2D)"

    @property
    def max_rel_diff(self) -> float:
        """The largest relative difference over the rows (0 for a report without rows)."""
        return max((r.rel_diff for r in self.rows), default=0.0)

    @property
    def ok(self) -> bool:
        """Whether every row's relative difference is below ``tol``."""
        return self.max_rel_diff < self.tol

    @property
    def exact_rows_ok(self) -> bool:
        """``ok`` over the rows that no straight-through estimator reaches."""
        return all(r.rel_diff < self.tol for r in self.rows if not r.straight_through)

    def __str__(self) -> str:
        mode = "directional" if self.directional else "elementwise"
        lines = [f"gradcheck ({mode}, float64 central differences)"]
        width = max((len(r.name) for r in self.rows), default=4)
        lines.append(f"{'name':<{width}}  {'shape':<16}  {'rel diff':>10}  {'max abs err':>11}")
        for r in self.rows:
            name, shape = r.name + ("*" if r.straight_through else ""), str(r.shape)
            lines.append(
                f"{name:<{width + 1}} {shape:<16}  {r.rel_diff:>10.3e}  {r.max_abs_err:>11.3e}"
            )
        verdict = "OK" if self.ok else "FAILED"
        lines.append(
            f"{verdict}: max relative difference {self.max_rel_diff:.3e} (tol {self.tol:g})"
        )
        return "\n".join(lines + self._straight_through_note())

    def _straight_through_note(self) -> list[str]:
        if not self.straight_through:
            return []
        rest = [r.rel_diff for r in self.rows if not r.straight_through]
        after = "No row lies after them."
        if rest:
            verdict = "OK" if self.exact_rows_ok else "FAILED (a real disagreement)"
            after = f"The rows after them: {verdict}, max relative difference {max(rest):.3e}."
        note = (
            f"* Straight-through estimator: layers {', '.join(self.straight_through)} quantize "
            "in the forward pass, and their backward pass is, by design, not the derivative of "
            "the forward (sign and rounding have derivative 0 almost everywhere) but the "
            "gradient of a surrogate (hardtanh, clip). The rows marked * (those layers and every "
            f"one before them) are expected to FAIL. {after} To check the hand-derived backward "
            "of the rest, check the float model: the same layers with act_bit=32 and "
            "weight_bit=32."
        )
        return textwrap.wrap(note, 100, subsequent_indent="  ")


def _compare(name, arr, analytic, f, eps, directional, rng, numerics=None) -> GradcheckRow:
    """Compare ``analytic`` (the gradient of ``f`` w.r.t. ``arr``) with central differences.

    Appends ``(numerical, analytic)`` to ``numerics`` when given (for the all-parameters row).
    """
    if not directional:
        num = numerical_gradient(f, arr, eps)
        if numerics is not None:
            numerics.append((num.ravel(), np.asarray(analytic, dtype=np.float64).ravel()))
        err = float(np.max(np.abs(num - analytic), initial=0.0))
        return GradcheckRow(name, arr.shape, relative_difference(num, analytic), err)
    v = rng.standard_normal(arr.shape)
    v /= max(np.linalg.norm(v), 1e-300)
    old = arr.copy()
    arr += eps * v
    plus = float(f())
    arr[...] = old - eps * v
    minus = float(f())
    arr[...] = old
    num = np.array((plus - minus) / (2 * eps))
    ana = np.array(float(np.sum(analytic * v)))
    return GradcheckRow(name, arr.shape, relative_difference(num, ana), float(abs(num - ana)))


def _to64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def gradcheck(
    target: Layer | tuple[Callable, Callable],
    *inputs: np.ndarray,
    target_values: Any = None,
    loss: Callable | None = None,
    l2: float = 0.0,
    hyper: dict | None = None,
    eps: float = 1e-6,
    directional: bool = False,
    tol: float = 1e-7,
    check_inputs: bool = True,
    seed: int = 0,
) -> GradcheckReport:
    """Check an op ``(forward, backward)``, a layer, or a model with a ``loss`` in float64.

    - op: ``gradcheck((conv_forward, conv_backward), x, w, b, hyper={"stride": 2})`` checks every
      array input under ``L = Σ y·r`` with a fixed random ``r``;
    - layer or model without loss: the same ``L`` for the input ``x`` and every parameter;
    - model with ``loss(out, target_values) -> (value, dout)``: the cost that training
      minimises, plus ``l2 / (2N) · Σ W²`` over the weights (not the biases) when ``l2 > 0``,
      the regularised cost of the classic digit network.

    A layer's parameters are converted to float64 in place for the check (the check needs the
    precision); rebuild or ``astype`` them afterwards if you need float32 again.

    Returns a ``GradcheckReport`` (``print`` it; ``report.ok``). Raises TypeError for a ``target``
    that is neither a layer nor a ``(forward, backward)`` pair, ValueError for a layer given more
    than one input array.
    """
    rng = np.random.default_rng(seed)
    report = GradcheckReport(tol=tol, directional=directional)
    if isinstance(target, tuple):
        _check_op(
            target,
            [_to64(x) if x is not None else None for x in inputs],
            hyper or {},
            eps,
            directional,
            rng,
            report,
        )
        return report
    if not isinstance(target, Layer):
        raise TypeError(
            f"gradcheck: expected a Layer or a (forward, backward) pair. Received: {type(target)}."
        )
    if len(inputs) != 1:
        raise ValueError(f"gradcheck: a layer takes one input array. Received: {len(inputs)}.")
    _check_layer(
        target,
        _to64(inputs[0]),
        target_values,
        loss,
        l2,
        eps,
        directional,
        check_inputs,
        rng,
        report,
    )
    return report


def _check_op(pair, arrays, hyper, eps, directional, rng, report) -> None:
    forward, backward = pair
    y, _ = forward(*arrays, **hyper)
    r = rng.standard_normal(np.shape(y))
    _, cache = forward(*arrays, **hyper)
    grads = backward(r.astype(y.dtype), cache)

    def f() -> float:
        return float(np.sum(forward(*arrays, **hyper)[0] * r))

    for i, (arr, g) in enumerate(zip(arrays, grads)):
        if arr is not None and g is not None:
            report.rows.append(_compare(f"input {i}", arr, g, f, eps, directional, rng))


def _check_layer(layer, x, target_values, loss, l2, eps, directional, check_inputs, rng, report):
    named = list(layer.named_parameters())
    for _, p in named:
        p.data = _to64(p.data)
        p.grad = np.zeros_like(p.data)
    state = {}

    def cost(with_backward: bool = False) -> float:
        out = layer(x)
        if loss is None:
            r = state.setdefault("r", rng.standard_normal(out.shape))
            value, dout = float(np.sum(out * r)), r
        else:
            value, dout = loss(out, target_values)
            value = float(value)
        weights = [p for n, p in named if n.split(".")[-1] == "weight"]
        n = x.shape[0]
        value += l2 / (2 * n) * sum(float(np.sum(p.data**2)) for p in weights)
        if with_backward:
            layer.zero_grad()
            state["dx"] = layer.backward(dout)
            for p in weights:
                p.grad += (l2 / n) * p.data
        return value

    was_training = layer.training
    cost(with_backward=True)
    analytic = {name: p.grad.copy() for name, p in named}
    if check_inputs:
        report.rows.append(_compare("input", x, state["dx"], cost, eps, directional, rng))
    numerics: list = []
    for name, p in named:
        row = _compare(name, p.data, analytic[name], cost, eps, directional, rng, numerics)
        report.rows.append(row)
    if len(numerics) > 1:
        # The classic exercise's single number: all parameters unrolled into one vector.
        num, ana = (np.concatenate(parts) for parts in zip(*numerics))
        err = float(np.max(np.abs(num - ana)))
        report.rows.append(
            GradcheckRow("all parameters", (num.size,), relative_difference(num, ana), err)
        )
    _mark_straight_through(layer, report, check_inputs)
    layer.train(was_training)


def _mark_straight_through(model: Layer, report: GradcheckReport, check_inputs: bool) -> None:
    """Flag the rows at or before (the layer tree's pre-order) the last straight-through layer."""
    order = {name: i for i, (name, _) in enumerate(model.named_layers())}
    ste = [(name, l) for name, l in model.named_layers() if getattr(l, "straight_through", False)]
    if not ste:
        return
    report.straight_through = [f"{n or 'the model'} ({type(l).__name__})" for n, l in ste]
    last = max(order[name] for name, _ in ste)
    params = report.rows[int(check_inputs) :]
    for row in params:
        row.straight_through = row.name == "all parameters" or (
            order.get(row.name.rpartition(".")[0], last) <= last
        )
    if check_inputs:
        report.rows[0].straight_through = True
