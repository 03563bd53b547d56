"""``deltanet.fast.activations``: ReLU's numba kernels and its bit-mask backward against the
reference ``deltanet.ops.activations``, bit for bit (NaN payloads, ±inf, ±0 and denormals)."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.fast import activations as fast
from deltanet.fast import plan
from deltanet.ops import activations as ref


def _bits(a):
    return a.view(f"u{a.itemsize}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_backward_matches_the_reference_bit_for_bit(numba_on, dtype):
    """The numba kernel, NaN / inf / -0 included, on a map large enough to run it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 110, 110)).astype(dtype)
    x.flat[:4] = [0.0, -0.0, np.inf, -np.inf]
    y, cache = ref.relu_forward(x)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy.flat[:6] = [np.nan, np.inf, -np.inf, -0.0, -0.0, np.nan]
    assert plan.compiled_relu(dy, y)
    (got,) = fast.relu_backward(dy, cache)
    (want,) = ref.relu_backward(dy, cache)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_forward_matches_np_maximum_bit_for_bit(numba_on, dtype):
    """NaN (with its payload), ±inf, ±0 and denormals: the kernel gives np.maximum's bits."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3, 110, 110)).astype(dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    x.flat[:8] = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny]
    assert plan.compiled_relu(x, x)
    got, (cached,) = fast.relu_forward(x)
    assert cached is got
    want, _ = ref.relu_forward(x)
    assert got.dtype == want.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_bit_mask_backward_matches_the_reference_bit_for_bit(engine, dtype):
    """Small maps (no kernel): the AND with a mask gives np.where's bits, views included."""
    y, cache = fast.relu_forward(np.array([-1.0, 0.0, 2.0, -3.0, 4.0, 5.0], dtype=dtype))
    dy = np.array([np.nan, -np.inf, -2.5, -0.0, np.inf, -0.0], dtype=dtype)
    (got,) = fast.relu_backward(dy, cache)
    np.testing.assert_array_equal(_bits(got), _bits(ref.relu_backward(dy, cache)[0]))
    assert np.signbit(got[5]) and not np.signbit(got[3])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(dtype)
    dy = rng.standard_normal((6, 4)).astype(dtype).T  # a transposed view
    cache = fast.relu_forward(x)[1]
    np.testing.assert_array_equal(fast.relu_backward(dy, cache)[0], ref.relu_backward(dy, cache)[0])


def test_the_other_activations_are_the_reference():
    for name in fast.__all__:
        if not name.startswith("relu"):
            assert getattr(fast, name) is getattr(ref, name), name
    assert set(fast.__all__) == {n for n in dir(ref) if n.endswith(("_forward", "_backward"))} | {
        "sigmoid",
        "sigmoid_gradient",
    }
