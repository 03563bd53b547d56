"""Optimizers: state per parameter, no knowledge of layers (Chainer's UpdateRule, optax).

An optimizer holds a list of ``Parameter``s and, for each, a dict of state arrays in the
parameter's dtype (float32 stays float32). ``step()`` reads ``p.grad`` and updates ``p.data`` in
place; it never writes to ``p.grad``. Before the rule, the gradient goes through, in order:
clipping by value (``torch.nn.utils.clip_grad_value_``), clipping by global norm
(``clip_grad_norm_``), coupled L2 weight decay ``g += wd * w`` and L1 ``g += l1 * sign(w)``.
Each rule matches ``torch.optim`` of the same name (single-tensor path) on the same gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from deltanet.layers.base import Parameter

_NORM_EPS = 1e-6  # clip_grad_norm_: coef = max_norm / (total_norm + 1e-6)


class Optimizer:
    """Base class: parameters, common hyper-parameters, gradient preprocessing, state I/O.

    ``params``: a model or an iterable of ``Parameter``s. Raises TypeError for ``params`` of another
    kind, ValueError for no parameter or one listed twice, and for a ``lr``, ``weight_decay``,
    ``l1``, ``clip_norm`` or ``clip_value`` that is not a finite number >= 0 (> 0 for the clips).
    """

    name = "optimizer"
    decoupled_weight_decay = False  # AdamW: w *= 1 - lr * wd instead of g += wd * w

    def __init__(
        self,
        params: Any,
        lr: float,
        *,
        weight_decay: float = 0.0,
        l1: float = 0.0,
        clip_norm: float | None = None,
        clip_value: float | None = None,
    ) -> None:
        self.params = _as_parameters(type(self).__name__, params)
        self.lr = lr
        self.weight_decay = self._number("weight_decay", weight_decay)
        self.l1 = self._number("l1", l1)
        self.clip_norm = self._optional_positive("clip_norm", clip_norm)
        self.clip_value = self._optional_positive("clip_value", clip_value)
        self.steps = 0
        self.state: list[dict[str, np.ndarray]] = [self._init_state(p.data) for p in self.params]

    # --- the learning rate: writable, so a schedule can set it before each step ----------
    @property
    def lr(self) -> float:
        """The learning rate of the next ``step()``; a schedule sets it before each step.

        Setting it checks the value: ValueError unless a finite number >= 0.
        """
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # A Python float, so an np.float64 from a schedule cannot upcast float32 parameters.
        self._lr = self._number("lr", value)

    # --- the update ---------------------------------------------------------------------
    def step(self) -> None:
        """One update of every parameter from its ``.grad`` (which is left untouched)."""
        grads = self._clipped_gradients()
        self.steps += 1
        for p, g, state in zip(self.params, grads, self.state, strict=True):
            w = p.data
            if self.weight_decay and not self.decoupled_weight_decay:
                g = g + self.weight_decay * w  # L2: d/dw (wd/2)|w|² = wd w
            if self.l1:
                g = g + self.l1 * np.sign(w)  # L1: d/dw l1|w|₁ = l1 sign(w)
            self._update(w, g, state)

    def zero_grad(self) -> None:
        """Set the ``grad`` of every parameter this optimizer updates to zeros."""
        for p in self.params:
            p.zero_grad()

    def _clipped_gradients(self) -> list[np.ndarray]:
        """The gradients after clipping by value, then by global norm (new arrays if clipped)."""
        grads = [np.asarray(p.grad, dtype=p.dtype) for p in self.params]
        if self.clip_value is not None:
            c = self.clip_value
            grads = [np.clip(g, -c, c) for g in grads]
        if self.clip_norm is not None:
            total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
            scale = self.clip_norm / (total + _NORM_EPS)
            if scale < 1.0:  # torch multiplies by min(scale, 1); by 1 changes nothing
                grads = [g * scale for g in grads]
        return grads

    def _init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Fresh state arrays for a parameter ``w`` (same shape and dtype)."""
        return {}

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _update()")

    # --- config and state ---------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-able ``{"name": ..., "lr": ..., ...}``; ``make_optimizer(**)`` rebuilds it."""
        return {
            "name": self.name,
            "lr": self.lr,
            **self._rule_config(),
            "weight_decay": self.weight_decay,
            "l1": self.l1,
            "clip_norm": self.clip_norm,
            "clip_value": self.clip_value,
        }

    def _rule_config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays: ``step`` (0-d int64), ``hyper.<name>``, ``state.<i>.<key>``.

        Hyper-parameters are float64 arrays (booleans as 0-d int64; unset clips are absent).
        The arrays are copies, so later steps do not change a saved state.
        """
        out = {"step": np.array(self.steps, dtype=np.int64)}
        for key, value in self.get_config().items():
            if isinstance(value, bool):
                out[f"hyper.{key}"] = np.array(int(value), dtype=np.int64)
            elif isinstance(value, (int, float, list)):
                out[f"hyper.{key}"] = np.array(value, dtype=np.float64)
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"state.{i}.{key}"] = value.copy()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a ``state_dict()``: step, hyper-parameters (as torch does) and state arrays.

        Validates names, shapes and values; on any error nothing is changed.
        """
        cls = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{cls}.load_state_dict: expected a dict. Received: {type(state)}.")
        fresh = type(self)(self.params, **self._config_from_state(state))  # validates hypers
        expected = fresh.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{cls}.load_state_dict: state names disagree. "
                f"Missing: {missing}. Unexpected: {unexpected}."
            )
        step = np.asarray(state["step"])
        if step.shape != () or not np.issubdtype(step.dtype, np.integer) or step < 0:
            raise ValueError(
                f"{cls}.load_state_dict: step must be a 0-d non-negative integer array. "
                f"Received: {state['step']!r}."
            )
        for i, arrays in enumerate(fresh.state):
            for key, template in arrays.items():
                name = f"state.{i}.{key}"
                value = np.asarray(state[name])
                if value.shape != template.shape or not np.issubdtype(value.dtype, np.floating):
                    raise ValueError(
                        f"{cls}.load_state_dict: {name} must be a float array of shape "
                        f"{template.shape}. Received: {value.dtype} {value.shape}."
                    )
                template[...] = value
        fresh.steps = int(step)
        vars(self).update(vars(fresh))

    def _config_from_state(self, state: dict[str, np.ndarray]) -> dict[str, Any]:
        """Constructor arguments: this optimizer's config overridden by ``hyper.*`` entries."""
        cls = type(self).__name__
        config = self.get_config()
        del config["name"]
        for key, current in config.items():
            name = f"hyper.{key}"
            if name not in state:
                if key not in ("clip_norm", "clip_value"):  # only unset clips are left out
                    raise ValueError(f"{cls}.load_state_dict: missing {name!r}.")
                config[key] = None
                continue
            value = np.asarray(state[name])
            if not np.issubdtype(value.dtype, np.number) or value.ndim > 1:
                raise ValueError(
                    f"{cls}.load_state_dict: {name} must be a numeric scalar or vector. "
                    f"Received: {value.dtype} {value.shape}."
                )
            if isinstance(current, list) or value.ndim == 1:
                config[key] = [float(v) for v in value.ravel()]
            elif isinstance(current, bool):
                config[key] = bool(value)
            else:
                config[key] = float(value)
        return config

    # --- validation ---------------------------------------------------------------------
    def _number(self, arg: str, value: Any) -> float:
        """A finite, non-negative Python float; a ValueError naming the optimizer otherwise."""
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, bool
        )
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"{type(self).__name__}: {arg} must be a finite number >= 0. Received: {value!r}."
            )
        return float(value)

    def _optional_positive(self, arg: str, value: Any) -> float | None:
        if value is None:
            return None
        if self._number(arg, value) == 0:
            raise ValueError(f"{type(self).__name__}: {arg} must be > 0 or None. Received: 0.")
        return float(value)

    def _fraction(self, arg: str, value: Any) -> float:
        """A float in [0, 1) (betas, alpha)."""
        if self._number(arg, value) >= 1:
            raise ValueError(
                f"{type(self).__name__}: {arg} must be in [0, 1). Received: {value!r}."
            )
        return float(value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening and Nesterov (``torch.optim.SGD``).

    Raises ValueError for a ``momentum`` or ``dampening`` that is not a finite number >= 0, Nesterov
    without momentum or with dampening, and what ``Optimizer`` raises for ``params`` and the common
    hyper-parameters.
    """

    name = "sgd"

    def __init__(
        self,
        params: Any,
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        **common: Any,
    ) -> None:
        self.momentum = self._number("momentum", momentum)
        self.dampening = self._number("dampening", dampening)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(
                "SGD: nesterov=True needs momentum > 0 and dampening = 0. "
                f"Received: momentum={momentum!r}, dampening={dampening!r}."
            )
        super().__init__(params, lr, **common)

    def _init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        return {"momentum_buffer": np.zeros_like(w)} if self.momentum else {}

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        # b ← μ b + (1 − τ) g   (b = g at the first step)
        # d = g + μ b (Nesterov) or b;   w ← w − lr d
        if self.momentum:
            b = s["momentum_buffer"]
            if self.steps == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        w -= self.lr * g

    def _rule_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "dampening": self.dampening, "nesterov": self.nesterov}


class AdaGrad(Optimizer):
    """Adaptive per-coordinate steps from the summed squared gradients (``torch.optim.Adagrad``).

    Raises ValueError for an ``lr_decay``, ``initial_accumulator_value`` or ``eps`` that is not a
    finite number >= 0, and what ``Optimizer`` raises for ``params`` and the common hyper-
    parameters.
    """

    name = "adagrad"

    def __init__(
        self,
        params: Any,
        lr: float = 0.01,
        lr_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        **common: Any,
    ) -> None:
        self.lr_decay = self._number("lr_decay", lr_decay)
        self.initial_accumulator_value = self._number(
            "initial_accumulator_value", initial_accumulator_value
        )
        self.eps = self._number("eps", eps)
        super().__init__(params, lr, **common)

    def _init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        return {"sum": np.full_like(w, self.initial_accumulator_value)}

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        # lr_t = lr / (1 + (t − 1) λ);   G ← G + g²;   w ← w − lr_t g / (√G + ε)
        clr = self.lr / (1 + (self.steps - 1) * self.lr_decay)
        s["sum"] += g * g
        w -= clr * g / (np.sqrt(s["sum"]) + self.eps)

    def _rule_config(self) -> dict[str, Any]:
        return {
            "lr_decay": self.lr_decay,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.eps,
        }


class RMSProp(Optimizer):
    """Steps scaled by a running RMS of the gradients, maybe centered (``torch.optim.RMSprop``).

    Raises ValueError for an ``alpha`` outside [0, 1), an ``eps`` or ``momentum`` that is not a
    finite number >= 0, and what ``Optimizer`` raises for ``params`` and the common hyper-
    parameters.
    """

    name = "rmsprop"

    def __init__(
        self,
        params: Any,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        centered: bool = False,
        **common: Any,
    ) -> None:
        self.alpha = self._fraction("alpha", alpha)
        self.eps = self._number("eps", eps)
        self.momentum = self._number("momentum", momentum)
        self.centered = bool(centered)
        super().__init__(params, lr, **common)

    def _init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        state = {"square_avg": np.zeros_like(w)}
        if self.momentum:
            state["momentum_buffer"] = np.zeros_like(w)
        if self.centered:
            state["grad_avg"] = np.zeros_like(w)
        return state

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        # v ← α v + (1 − α) g²;   centered: m ← m + (1 − α)(g − m), v̂ = v − m² (else v̂ = v)
        # d = √v̂ + ε;   momentum: b ← μ b + g / d, w ← w − lr b;   else w ← w − lr g / d
        v = s["square_avg"]
        v *= self.alpha
        v += (1 - self.alpha) * (g * g)
        if self.centered:
            m = s["grad_avg"]
            m += (1 - self.alpha) * (g - m)
            d = np.sqrt(v - m * m) + self.eps
        else:
            d = np.sqrt(v) + self.eps
        if self.momentum:
            b = s["momentum_buffer"]
            b *= self.momentum
            b += g / d
            w -= self.lr * b
        else:
            w -= self.lr * (g / d)

    def _rule_config(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "eps": self.eps,
            "momentum": self.momentum,
            "centered": self.centered,
        }


class Adam(Optimizer):
    """Adam with bias correction and optional AMSGrad; L2 decay coupled (``torch.optim.Adam``).

    Raises ValueError for ``betas`` that are not a pair of numbers in [0, 1), an ``eps`` that is not
    a finite number >= 0, and what ``Optimizer`` raises for ``params`` and the common hyper-
    parameters.
    """

    name = "adam"

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        amsgrad: bool = False,
        **common: Any,
    ) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(
                f"{type(self).__name__}: betas must be a pair (beta1, beta2). Received: {betas!r}."
            )
        self.betas = (self._fraction("betas[0]", betas[0]), self._fraction("betas[1]", betas[1]))
        self.eps = self._number("eps", eps)
        self.amsgrad = bool(amsgrad)
        super().__init__(params, lr, **common)

    def _init_state(self, w: np.ndarray) -> dict[str, np.ndarray]:
        state = {"exp_avg": np.zeros_like(w), "exp_avg_sq": np.zeros_like(w)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(w)
        return state

    def _update(self, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        # AdamW first: w ← w (1 − lr λ)
        # m ← β1 m + (1 − β1) g;   v ← β2 v + (1 − β2) g²;   AMSGrad: v ← max(v_max, v)
        # w ← w − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
        (beta1, beta2), t = self.betas, self.steps
        if self.decoupled_weight_decay and self.weight_decay:
            w *= 1 - self.lr * self.weight_decay
        m, v = s["exp_avg"], s["exp_avg_sq"]
        m += (1 - beta1) * (g - m)  # torch's lerp form of β1 m + (1 − β1) g
        v *= beta2
        v += (1 - beta2) * (g * g)
        if self.amsgrad:
            np.maximum(s["max_exp_avg_sq"], v, out=s["max_exp_avg_sq"])
            v = s["max_exp_avg_sq"]
        step_size = self.lr / (1 - beta1**t)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
        w -= step_size * (m / denom)

    def _rule_config(self) -> dict[str, Any]:
        return {"betas": list(self.betas), "eps": self.eps, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay ``w ← w (1 − lr λ)`` (``torch.optim.AdamW``).

    Raises what ``Adam`` raises.
    """

    name = "adamw"
    decoupled_weight_decay = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(params, lr, betas, eps, amsgrad, weight_decay=weight_decay, **common)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
}


def make_optimizer(name: str, params: Any, **kwargs: Any) -> Optimizer:
    """The optimizer called ``name`` (case-insensitive) over ``params``; ``get_config()`` rebuilds.

    ``make_optimizer(**opt.get_config(), params=model)`` gives an equivalent optimizer.

    Raises ValueError for an unknown ``name`` (listing the optimizers), and what the optimizer
    raises for its arguments.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}. Valid names: {sorted(OPTIMIZERS)}.")
    return OPTIMIZERS[key](params, **kwargs)


def _as_parameters(cls: str, params: Any) -> list[Parameter]:
    """A Layer's ``parameters()`` or a list of distinct Parameters; errors name ``cls``."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    if not isinstance(params, Iterable) or isinstance(params, (str, bytes, np.ndarray)):
        raise TypeError(
            f"{cls}: params must be a Layer or an iterable of Parameters. "
            f"Received: {type(params).__name__}."
        )
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(
                f"{cls}: params must hold Parameters. Received at position {i}: {type(p).__name__}."
            )
    if not params:
        raise ValueError(f"{cls}: received an empty list of parameters.")
    if len({id(p) for p in params}) != len(params):
        raise ValueError(f"{cls}: a parameter appears more than once in params.")
    return params
