"""Optimizers: parity with torch.optim on the same gradients, clipping, L1, state I/O, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deltanet.layers import Dense, Parameter, ReLU, Sequential
from deltanet.optim import (
    OPTIMIZERS,
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    RMSProp,
    make_optimizer,
)
from tests.utils import torch_or_skip

SHAPES = [(3, 4), (5,), (2, 3, 2)]
TORCH_NAMES = {SGD: "SGD", AdaGrad: "Adagrad", RMSProp: "RMSprop", Adam: "Adam", AdamW: "AdamW"}

CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05}),
    (SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True}),
    (AdaGrad, {"lr": 0.1}),
    (AdaGrad, {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.2, "eps": 1e-6}),
    (AdaGrad, {"lr": 0.1, "weight_decay": 0.1}),
    (RMSProp, {"lr": 0.01}),
    (RMSProp, {"lr": 0.01, "alpha": 0.9, "momentum": 0.7}),
    (RMSProp, {"lr": 0.01, "centered": True, "eps": 1e-6}),
    (RMSProp, {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1, "eps": 1e-6}),
    (AdamW, {"lr": 0.01}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype), f"p{i}") for i, s in enumerate(SHAPES)]


def _grads(steps, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def _run(opt, params, grads):
    for step in grads:
        for p, g in zip(params, step):
            p.grad[...] = g
        opt.step()


def _torch_run(torch, params, grads, make_opt, before_step=None):
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = make_opt(tparams)
    for step in grads:
        for tp, g in zip(tparams, step):
            tp.grad = torch.tensor(g)
        if before_step is not None:
            before_step(tparams)
        opt.step()
    return [tp.detach().numpy() for tp in tparams]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kwargs", CASES)
def test_matches_torch(cls, kwargs, dtype):
    torch = torch_or_skip()
    params, grads = _params(dtype), _grads(10, dtype)
    expected = _torch_run(
        torch,
        params,
        grads,
        lambda tp: getattr(torch.optim, TORCH_NAMES[cls])(tp, foreach=False, **kwargs),
    )
    opt = cls(params, **kwargs)
    _run(opt, params, grads)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-6, "atol": 1e-6}
    for p, e in zip(params, expected):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, e, **tol)
    for state in opt.state:
        assert all(v.dtype == dtype for v in state.values())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "clip",
    [
        {"clip_value": 0.5},
        {"clip_norm": 1.0},
        {"clip_norm": 100.0},
        {"clip_value": 0.8, "clip_norm": 2.0},
    ],
)
def test_clipping_matches_torch_utilities(clip, dtype):
    torch = torch_or_skip()
    params, grads = _params(dtype), _grads(5, dtype)

    def clip_torch(tparams):
        if "clip_value" in clip:
            torch.nn.utils.clip_grad_value_(tparams, clip["clip_value"])
        if "clip_norm" in clip:
            torch.nn.utils.clip_grad_norm_(tparams, clip["clip_norm"], foreach=False)

    sgd = {"lr": 0.1, "momentum": 0.9}
    expected = _torch_run(
        torch, params, grads, lambda tp: torch.optim.SGD(tp, foreach=False, **sgd), clip_torch
    )
    _run(SGD(params, **sgd, **clip), params, grads)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-6, "atol": 1e-6}
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, **tol)


def test_clip_norm_scales_to_max_norm_and_leaves_grad_untouched():
    p = Parameter(np.array([3.0, 4.0]))  # |g| = 5 with the gradient below
    p.grad[...] = [3.0, 4.0]
    SGD([p], lr=1.0, clip_norm=1.0).step()
    np.testing.assert_allclose(p.data, [3.0 - 0.6, 4.0 - 0.8], rtol=1e-6)
    np.testing.assert_array_equal(p.grad, [3.0, 4.0])  # step() never writes p.grad


def test_l1_against_hand_computation():
    w0 = np.array([[0.5, -2.0], [0.0, 1.5]])
    g = np.array([[0.1, 0.2], [-0.3, 0.4]])
    p = Parameter(w0.copy())
    p.grad[...] = g
    SGD([p], lr=0.1, l1=0.01, weight_decay=0.2).step()
    # g' = g + wd w + l1 sign(w), sign(0) = 0;  w = w0 - lr g'
    hand = np.array(
        [
            [0.5 - 0.1 * (0.1 + 0.2 * 0.5 + 0.01), -2.0 - 0.1 * (0.2 - 0.4 - 0.01)],
            [0.0 - 0.1 * (-0.3), 1.5 - 0.1 * (0.4 + 0.3 + 0.01)],
        ]
    )
    np.testing.assert_allclose(p.data, hand, rtol=1e-14)


def test_adamw_l1_is_added_to_the_gradient():
    p = Parameter(np.array([1.0, -1.0]))
    p.grad[...] = [0.0, 0.0]
    AdamW([p], lr=0.1, weight_decay=0.0, l1=0.5).step()
    # first Adam step moves each weight by lr * sign(g) = lr * sign(w): towards zero
    np.testing.assert_allclose(p.data, [0.9, -0.9], rtol=1e-6)


@pytest.mark.parametrize("cls, kwargs", CASES)
def test_state_dict_round_trip_continues_bit_identically(cls, kwargs):
    params, grads = _params(np.float32), _grads(8, np.float32)
    opt = cls(params, **kwargs)
    _run(opt, params, grads[:4])
    saved = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in saved.values())
    assert saved["step"].dtype == np.int64 and saved["step"].shape == ()
    assert saved["hyper.lr"].dtype == np.float64
    copies = [Parameter(p.data.copy()) for p in params]
    other = cls(copies, lr=123.0)  # hyper-parameters come back from the state, as in torch
    other.load_state_dict(saved)
    assert other.get_config() == opt.get_config() and other.steps == 4
    _run(opt, params, grads[4:])
    _run(other, copies, grads[4:])
    for p, q in zip(params, copies):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy():
    params, grads = _params(np.float64), _grads(2, np.float64)
    opt = Adam(params)
    _run(opt, params, grads[:1])
    saved = opt.state_dict()
    before = saved["state.0.exp_avg"].copy()
    _run(opt, params, grads[1:])
    np.testing.assert_array_equal(saved["state.0.exp_avg"], before)


def test_load_state_dict_validates_and_changes_nothing_on_error():
    params = _params(np.float64)
    opt = SGD(params, lr=0.1, momentum=0.9)
    good = opt.state_dict()
    bad_shape = dict(good, **{"state.0.momentum_buffer": np.zeros((4, 3))})
    with pytest.raises(
        ValueError, match=r"SGD.load_state_dict: state.0.momentum_buffer .*\(3, 4\)"
    ):
        opt.load_state_dict(bad_shape)
    missing = {k: v for k, v in good.items() if k != "state.2.momentum_buffer"}
    with pytest.raises(ValueError, match=r"Missing: \['state.2.momentum_buffer'\]"):
        opt.load_state_dict(missing)
    with pytest.raises(ValueError, match="Unexpected: \\['state.3.momentum_buffer'\\]"):
        opt.load_state_dict(dict(good, **{"state.3.momentum_buffer": np.zeros(2)}))
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict(dict(good, step=np.array(-1)))
    with pytest.raises(ValueError, match=r"SGD: lr .* Received: -1.0"):
        opt.load_state_dict(dict(good, **{"hyper.lr": np.array(-1.0)}))
    adam_state = Adam(params).state_dict()
    with pytest.raises(ValueError, match="SGD.load_state_dict"):
        opt.load_state_dict(adam_state)
    assert opt.lr == 0.1 and opt.steps == 0
    with pytest.raises(TypeError, match="expected a dict"):
        opt.load_state_dict([("step", 0)])


def test_clip_settings_round_trip_through_state():
    params = _params(np.float64)
    saved = SGD(params, lr=0.1, clip_norm=2.0).state_dict()
    assert "hyper.clip_value" not in saved
    other = SGD(_params(np.float64), lr=0.1, clip_value=1.0)
    other.load_state_dict(saved)
    assert other.clip_norm == 2.0 and other.clip_value is None


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_config_is_json_and_rebuilds(name):
    model = Sequential(Dense(4, 3, rng=0), ReLU(), Dense(3, 2, rng=1))
    opt = make_optimizer(name, model, lr=0.05, clip_norm=1.0)
    config = json.loads(json.dumps(opt.get_config()))
    assert config["name"] == name and config["lr"] == 0.05
    rebuilt = make_optimizer(**config, params=model)
    assert type(rebuilt) is type(opt) and rebuilt.get_config() == opt.get_config()
    assert len(rebuilt.params) == 4


def test_lr_is_writable_and_keeps_float32():
    p = Parameter(np.ones(3, np.float32))
    p.grad[...] = 1
    opt = Adam([p], lr=0.1)
    opt.lr = np.float64(0.5)  # as a schedule may return it
    assert type(opt.lr) is float
    opt.step()
    assert p.data.dtype == np.float32 and opt.state[0]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(p.data, 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match=r"Adam: lr .* Received: -0.1"):
        opt.lr = -0.1


def test_zero_grad():
    params = _params(np.float64)
    for p in params:
        p.grad[...] = 1
    SGD(params).zero_grad()
    assert all(not p.grad.any() for p in params)


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (SGD, {"lr": -0.1}, r"SGD: lr must be .* Received: -0.1"),
        (SGD, {"lr": float("nan")}, r"SGD: lr .* Received: nan"),
        (SGD, {"momentum": -0.5}, r"SGD: momentum .* Received: -0.5"),
        (SGD, {"nesterov": True}, r"SGD: nesterov=True needs momentum > 0 .* momentum=0.0"),
        (SGD, {"momentum": 0.9, "dampening": 0.1, "nesterov": True}, r"dampening=0.1"),
        (SGD, {"weight_decay": -1}, r"SGD: weight_decay .* Received: -1"),
        (SGD, {"clip_norm": 0}, r"SGD: clip_norm must be > 0"),
        (SGD, {"clip_value": -1.0}, r"SGD: clip_value .* Received: -1.0"),
        (AdaGrad, {"eps": -1e-3}, r"AdaGrad: eps .* Received: -0.001"),
        (AdaGrad, {"lr_decay": -1.0}, r"AdaGrad: lr_decay"),
        (RMSProp, {"alpha": 1.5}, r"RMSProp: alpha must be in \[0, 1\). Received: 1.5"),
        (Adam, {"betas": (1.0, 0.999)}, r"Adam: betas\[0\] must be in \[0, 1\). Received: 1.0"),
        (Adam, {"betas": (0.9, -0.1)}, r"Adam: betas\[1\] .* Received: -0.1"),
        (Adam, {"betas": 0.9}, r"Adam: betas must be a pair .* Received: 0.9"),
        (AdamW, {"betas": (0.9, 1.0)}, r"AdamW: betas\[1\]"),
        (Adam, {"lr": "fast"}, r"Adam: lr .* Received: 'fast'"),
    ],
)
def test_bad_hyper_parameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(_params(np.float64), **kwargs)


def test_bad_params_and_names():
    with pytest.raises(TypeError, match=r"SGD: params must hold Parameters. .* ndarray"):
        SGD([np.zeros(3)])
    with pytest.raises(TypeError, match="SGD: params must be a Layer"):
        SGD(3)
    with pytest.raises(ValueError, match="Adam: received an empty list"):
        Adam([])
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p])
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adamax'. Valid names: \['adagrad'"):
        make_optimizer("adamax", [p])
    assert isinstance(make_optimizer("Adam", [p]), Adam)
