"""Learning-rate policies: Caffe's formulas at chosen iterations, purity, validation."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet import schedules
from deltanet.schedules import POLICIES, make_schedule, warmup

# (policy, base_lr, params, {iteration: hand-computed lr})
CASES = [
    ("fixed", 0.01, {}, {0: 0.01, 1000: 0.01}),
    # base_lr * gamma^floor(it / stepsize)
    ("step", 0.01, {"gamma": 0.1, "stepsize": 10}, {0: 0.01, 9: 0.01, 10: 0.001, 25: 1e-4}),
    # base_lr * gamma^it: 0.99^100 = 0.366032341273...
    ("exp", 0.01, {"gamma": 0.99}, {0: 0.01, 1: 0.0099, 100: 0.003660323412732292}),
    # Caffe's LeNet solver: base_lr 0.01, gamma 1e-4, power 0.75: 0.01 * (1 + 1e-4 it)^-0.75
    # 1.5^-0.75 = 0.7377879..., 2^-0.75 = 0.5946035...
    (
        "inv",
        0.01,
        {"gamma": 1e-4, "power": 0.75},
        {0: 0.01, 5000: 0.007377879464668811, 10000: 0.005946035575013605},
    ),
    # gamma^k after each step value: k = 0 before 5, 1 from 5, 2 from 8
    (
        "multistep",
        1.0,
        {"gamma": 0.5, "stepvalues": [5, 8]},
        {0: 1.0, 4: 1.0, 5: 0.5, 7: 0.5, 8: 0.25, 100: 0.25},
    ),
    # base_lr * (1 - it / max_iter)^power, 0 from max_iter on
    ("poly", 0.1, {"max_iter": 100, "power": 2}, {0: 0.1, 50: 0.025, 90: 0.001, 100: 0, 150: 0}),
    ("poly", 0.1, {"max_iter": 100, "power": 0.5}, {75: 0.05}),
    # base_lr / (1 + e^(-gamma (it - stepsize))): 0.1 / (1 + e^5) = 6.6928509e-4
    (
        "sigmoid",
        0.1,
        {"gamma": 0.1, "stepsize": 50},
        {0: 0.0006692850924284856, 50: 0.05, 100: 0.09933071490757153, 10**6: 0.1},
    ),
    ("sigmoid", 0.1, {"gamma": -0.1, "stepsize": 50}, {50: 0.05, 10**6: 0.0}),
    # min_lr + (base_lr - min_lr) (1 + cos(pi it / max_iter)) / 2; cos(pi/4) = 0.7071067811865476
    ("cosine", 0.1, {"max_iter": 100}, {0: 0.1, 25: 0.08535533905932738, 50: 0.05, 100: 0.0}),
    ("cosine", 0.1, {"max_iter": 100, "min_lr": 0.01}, {50: 0.055, 100: 0.01, 200: 0.01}),
]


@pytest.mark.parametrize("policy, base_lr, params, expected", CASES)
def test_values_at_chosen_iterations(policy, base_lr, params, expected):
    schedule = make_schedule(policy, base_lr, **params)
    fn = getattr(schedules, policy)
    for it, lr in expected.items():
        assert schedule(it) == pytest.approx(lr, rel=1e-12, abs=1e-15), (policy, it)
        assert fn(it, base_lr, **params) == pytest.approx(lr, rel=1e-12, abs=1e-15)
        assert type(schedule(it)) is float


@pytest.mark.parametrize("policy, base_lr, params, expected", CASES)
def test_pure_same_input_same_output(policy, base_lr, params, expected):
    schedule = make_schedule(policy, base_lr, **params)
    its = list(expected)
    first = [schedule(it) for it in its]
    again = [schedule(it) for it in reversed(its)][::-1]  # call order does not matter
    assert first == again
    assert make_schedule(policy, base_lr, **params)(its[-1]) == first[-1]


def test_numpy_iteration_gives_python_float():
    lr = make_schedule("step", 0.1, gamma=0.5, stepsize=2)(np.int64(4))
    assert type(lr) is float and lr == 0.025


def test_warmup_linear_then_schedule():
    base = make_schedule("step", 0.1, gamma=0.1, stepsize=20)
    warm = warmup(base, 10)
    assert [warm(it) for it in (0, 5, 9, 10, 25)] == pytest.approx([0.0, 0.05, 0.09, 0.1, 0.01])
    warm = warmup(base, 10, start_factor=0.1)
    # factor = 0.1 + 0.9 it / 10
    assert [warm(it) for it in (0, 5, 10)] == pytest.approx([0.01, 0.055, 0.1])
    via_make = make_schedule("cosine", 0.1, max_iter=100, warmup_iters=4, warmup_start_factor=0.5)
    # it 2: factor 0.75 times cosine(2) = 0.05 (1 + cos(pi/50))
    assert via_make(2) == pytest.approx(0.75 * 0.05 * (1 + np.cos(np.pi / 50)), rel=1e-12)
    assert via_make(50) == pytest.approx(0.05)
    assert make_schedule("fixed", 0.1, warmup_iters=0)(0) == 0.1


def test_integral_floats_accepted():
    assert make_schedule("step", 1.0, gamma=0.5, stepsize=10.0)(10) == 0.5


def test_policies_listed():
    assert POLICIES == ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid", "cosine")


@pytest.mark.parametrize(
    "policy, base_lr, params, match",
    [
        ("cyclic", 0.1, {}, r"Unknown lr policy 'cyclic'. Valid policies: \['fixed', 'step'"),
        ("step", 0.1, {"gamma": 0.1}, r"lr policy 'step': .* Missing: \['stepsize'\]"),
        ("inv", 0.1, {"gamma": 0.1}, r"lr policy 'inv': takes \['gamma', 'power'\]"),
        ("fixed", 0.1, {"gamma": 0.1}, r"lr policy 'fixed': .* Unknown: \['gamma'\]"),
        ("step", -0.1, {"gamma": 0.1, "stepsize": 1}, r"'step': base_lr .* Received: -0.1"),
        ("step", 0.1, {"gamma": 0.1, "stepsize": 0}, r"'step': stepsize .* >= 1. Received: 0"),
        ("step", 0.1, {"gamma": 0.1, "stepsize": 2.5}, r"stepsize must be an integer"),
        ("exp", 0.1, {"gamma": 0}, r"'exp': gamma must be > 0. Received: 0"),
        ("exp", 0.1, {"gamma": float("nan")}, r"'exp': gamma .* Received: nan"),
        ("multistep", 0.1, {"gamma": 0.1, "stepvalues": [8, 5]}, r"stepvalues must increase"),
        ("multistep", 0.1, {"gamma": 0.1, "stepvalues": []}, r"stepvalues must be a non-empty"),
        ("multistep", 0.1, {"gamma": 0.1, "stepvalues": 5}, r"Received: 5"),
        ("poly", 0.1, {"max_iter": 0, "power": 1}, r"'poly': max_iter .* Received: 0"),
        ("poly", 0.1, {"max_iter": 10, "power": -1}, r"'poly': power .* Received: -1"),
        ("cosine", 0.1, {"max_iter": 10, "min_lr": -1}, r"'cosine': min_lr"),
        ("fixed", 0.1, {"warmup_iters": -2}, r"'fixed': warmup_iters .* Received: -2"),
        ("fixed", 0.1, {"warmup_iters": 2, "warmup_start_factor": 2}, r"warmup_start_factor"),
        ("step", "0.1", {"gamma": 0.1, "stepsize": 1}, r"base_lr .* Received: '0.1'"),
    ],
)
def test_make_schedule_validation(policy, base_lr, params, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(policy, base_lr, **params)


@pytest.mark.parametrize("it", [-1, 1.5, "3", True])
def test_bad_iteration(it):
    with pytest.raises(ValueError, match="iteration must be an int >= 0"):
        make_schedule("fixed", 0.1)(it)
