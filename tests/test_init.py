"""Initialisers: shapes, dtypes, bounds, seeding, and PyTorch's defaults."""

import math

import numpy as np
import pytest

from deltanet import init


def test_same_seed_same_weights():
    a = init.glorot_uniform((8, 4, 3, 3), rng=7)
    b = init.glorot_uniform((8, 4, 3, 3), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


def test_fans_follow_pytorch():
    assert init.fans((16, 6, 5, 5)) == (150, 400)
    assert init.fans((10, 84)) == (84, 10)
    with pytest.raises(ValueError, match="at least 2"):
        init.fans((5,))


@pytest.mark.parametrize(
    "fn,bound",
    [
        (lambda s: init.glorot_uniform(s, rng=0), math.sqrt(6 / (300 + 200))),
        (lambda s: init.he_uniform(s, rng=0), math.sqrt(6 / 300)),
        (lambda s: init.torch_default(s, 300, rng=0), 1 / math.sqrt(300)),
    ],
)
def test_uniform_bounds(fn, bound):
    w = fn((200, 300))
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound  # the whole range is used


def test_normal_std():
    w = init.he_normal((400, 500), rng=1, dtype=np.float64)
    assert abs(w.std() - math.sqrt(2 / 500)) < 0.01 * math.sqrt(2 / 500) * 5
    w = init.glorot_normal((400, 500), rng=1, dtype=np.float64)
    assert abs(w.std() - math.sqrt(2 / 900)) < 0.05 * math.sqrt(2 / 900)


def test_epsilon_init_of_the_digit_exercise():
    w = init.epsilon_uniform(400, 25, rng=0)
    assert w.shape == (25, 400)
    assert np.abs(w).max() <= math.sqrt(6) / math.sqrt(425)
    w = init.epsilon_uniform(400, 25, rng=0, epsilon=0.12)
    assert 0.11 < np.abs(w).max() <= 0.12


def test_bad_rng():
    with pytest.raises(TypeError, match="rng"):
        init.uniform((2, 2), 0, 1, rng="seed")


def test_torch_default_matches_torch_distribution():
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(300, 200)
    ours = init.torch_default((200, 300), 300, rng=0)
    # Same bound (PyTorch's kaiming_uniform with a = sqrt(5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    assert abs(float(lin.weight.detach().abs().max()) - float(np.abs(ours).max())) < 1e-3
