"""Pooling ops: naive loops, central differences, PyTorch parity (ties and NaN included)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deltanet.ops.pool import (
    avg_pool_backward,
    avg_pool_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
    max_pool_argmax,
    max_pool_backward,
    max_pool_forward,
)
from tests.utils import check_grads, torch_or_skip

SHAPES = {1: [(9,), (8,)], 2: [(7, 6), (6, 5)], 3: [(5, 6, 5), (4, 5, 6)]}


# --- naive references: explicit loops over every index, PyTorch's rules written out ---------


def out_len(n, k, s, p, d, ceil_mode):
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // s + 1
    o = -(-span // s) + 1
    return o - 1 if (o - 1) * s >= n + p else o  # the last window must start inside the input


def window_cells(o, k, s, p, d):
    """Every (input index, is-real) of window ``o``, in window order; -p.. may be padding."""
    for kk in itertools.product(*map(range, k)):
        yield tuple(oa * sa - pa + ka * da for oa, sa, pa, ka, da in zip(o, s, p, kk, d))


def naive_out_shape(spatial, k, s, p, d, ceil_mode):
    return tuple(out_len(*args, ceil_mode) for args in zip(spatial, k, s, p, d))


def naive_max_pool(x, dy, k, s, p, d, ceil_mode):
    """PyTorch's scan: start at the first real cell, take ``v > max or isnan(v)``."""
    spatial = x.shape[2:]
    out = naive_out_shape(spatial, k, s, p, d, ceil_mode)
    y = np.zeros(x.shape[:2] + out, x.dtype)
    dx = np.zeros_like(x)
    for n, c in np.ndindex(*x.shape[:2]):
        for o in np.ndindex(*out):
            best, arg = -np.inf, None
            for i in window_cells(o, k, s, p, d):
                if not all(0 <= ia < na for ia, na in zip(i, spatial)):
                    continue
                v = x[(n, c, *i)]
                if arg is None:
                    arg = i
                if v > best or np.isnan(v):
                    best, arg = v, i
            y[(n, c, *o)] = best
            if arg is not None and dy is not None:
                dx[(n, c, *arg)] += dy[(n, c, *o)]
    return y, dx


def naive_avg_pool(x, dy, k, s, p, ceil_mode, count_include_pad):
    """Sum of the real cells over PyTorch's divisor; δ/divisor back to each real cell."""
    spatial = x.shape[2:]
    ones = (1,) * len(k)
    out = naive_out_shape(spatial, k, s, p, ones, ceil_mode)
    y = np.zeros(x.shape[:2] + out, x.dtype)
    dx = np.zeros_like(x)
    for n, c in np.ndindex(*x.shape[:2]):
        for o in np.ndindex(*out):
            total, in_padded, real = 0.0, 0, []
            for i in window_cells(o, k, s, p, ones):
                if all(-pa <= ia < na + pa for ia, na, pa in zip(i, spatial, p)):
                    in_padded += 1
                if all(0 <= ia < na for ia, na in zip(i, spatial)):
                    total += x[(n, c, *i)]
                    real.append(i)
            divisor = in_padded if count_include_pad else len(real)
            y[(n, c, *o)] = total / divisor
            for i in real if dy is not None else ():
                dx[(n, c, *i)] += dy[(n, c, *o)] / divisor
    return y, dx


def distinct(shape, seed=0, dtype=np.float64):
    """Values with no ties (a scaled permutation), so max is differentiable everywhere."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) / size - 0.5).astype(dtype)


def cases(max_pool):
    """(shape, k, s, p, d, ceil_mode) over ranks 1-3, kernels 2-3, strides 1-3, pads, dilations."""
    out = []
    for nd, k, s, p, d, ceil_mode, which in itertools.product(
        (1, 2, 3), (2, 3), (1, 2, 3), (0, 1), (1, 2) if max_pool else (1,), (False, True), (0, 1)
    ):
        spatial = SHAPES[nd][which]
        batch = 1 if which else 2  # batch 1 too
        kk, ss, pp, dd = ((v,) * nd for v in (k, s, p, d))
        if min(naive_out_shape(spatial, kk, ss, pp, dd, ceil_mode)) < 1:
            continue
        out.append(((batch, 2, *spatial), kk, ss, pp, dd, ceil_mode))
    return out


MAX_CASES = cases(max_pool=True)
AVG_CASES = [(shape, k, s, p, c) for shape, k, s, p, _, c in cases(max_pool=False)]


def ids(cases):
    """``2d-x1x2x7x6-k3-s2-p1-d2-ceil``: readable test names."""
    names = []
    for shape, k, s, p, *rest in cases:
        name = f"{len(shape) - 2}d-x{'x'.join(map(str, shape))}-k{k[0]}-s{s[0]}-p{p[0]}"
        if len(rest) == 2:
            name += f"-d{rest[0][0]}"
        names.append(name + ("-ceil" if rest[-1] else ""))
    return names


def torch_max(torch, x, dy, k, s, p, d, ceil_mode):
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, f"max_pool{x.ndim - 2}d")(tx, k, s, p, d, ceil_mode)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


def torch_avg(torch, x, dy, k, s, p, ceil_mode, count_include_pad):
    tx = torch.tensor(x, requires_grad=True)
    f = getattr(torch.nn.functional, f"avg_pool{x.ndim - 2}d")
    ty = f(tx, k, s, p, ceil_mode, count_include_pad)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


# --- max pooling -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", MAX_CASES, ids=ids(MAX_CASES))
def test_max_pool_matches_naive_and_torch(shape, k, s, p, d, ceil_mode):
    torch = torch_or_skip()
    x = distinct(shape)
    y, cache = max_pool_forward(x, k, s, p, d, ceil_mode)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    (dx,) = max_pool_backward(dy, cache)
    y_ref, dx_ref = naive_max_pool(x, dy, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    y_t, dx_t = torch_max(torch, x, dy, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", MAX_CASES[::7], ids=ids(MAX_CASES[::7]))
def test_max_pool_gradcheck(shape, k, s, p, d, ceil_mode):
    x = distinct(shape, seed=2)

    def forward(r):
        y, cache = max_pool_forward(x, k, s, p, d, ceil_mode)
        return y, (None if r is None else max_pool_backward(r, cache))

    check_grads(forward, [x])


@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", MAX_CASES[::5], ids=ids(MAX_CASES[::5]))
def test_max_pool_float32_torch(shape, k, s, p, d, ceil_mode):
    torch = torch_or_skip()
    x = distinct(shape, dtype=np.float32)
    y, cache = max_pool_forward(x, k, s, p, d, ceil_mode)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    (dx,) = max_pool_backward(dy, cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    y_t, dx_t = torch_max(torch, x, dy, k, s, p, d, ceil_mode)
    np.testing.assert_allclose(y, y_t, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-4, atol=1e-6)


TIE_CASES = [
    ((2, 2, 6), (3,), (1,), (1,), (1,), False),
    ((1, 2, 7), (2,), (2,), (1,), (2,), True),
    ((2, 2, 5, 6), (3, 3), (1, 1), (1, 1), (1, 1), False),
    ((1, 2, 7, 5), (2, 3), (2, 1), (1, 1), (2, 1), True),
    ((1, 2, 4, 5, 4), (2, 2, 2), (1, 1, 1), (1, 0, 1), (1, 1, 1), True),
]


@pytest.mark.parametrize("fill", ["zeros", "small_ints"])
@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", TIE_CASES, ids=ids(TIE_CASES))
def test_max_pool_ties_match_torch_exactly(shape, k, s, p, d, ceil_mode, fill):
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    x = np.zeros(shape) if fill == "zeros" else rng.integers(0, 3, shape).astype(np.float64)
    y, cache = max_pool_forward(x, k, s, p, d, ceil_mode)
    dy = rng.integers(1, 9, y.shape).astype(np.float64)
    (dx,) = max_pool_backward(dy, cache)
    y_t, dx_t = torch_max(torch, x, dy, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(dx, dx_t)
    np.testing.assert_array_equal(dx, naive_max_pool(x, dy, k, s, p, d, ceil_mode)[1])
    # one window at a time: its δ lands whole on exactly one input, and that input is a maximum
    for o in np.ndindex(*y.shape):
        onehot = np.zeros_like(y)
        onehot[o] = 1.0
        (g,) = max_pool_backward(onehot, cache)
        (where,) = np.argwhere(g)
        assert g[tuple(where)] == 1.0 and x[tuple(where)] == y[o]


def test_max_pool_nan_and_neg_inf_follow_torch():
    torch = torch_or_skip()
    x = np.array([[[1.0, np.nan, 2.0, np.nan, 0.0, -np.inf, -np.inf, -np.inf, 3.0]]])
    for k, s, p in [(5, 1, 2), (2, 2, 1), (3, 1, 1), (9, 1, 0)]:
        y, cache = max_pool_forward(x, k, s, p)
        dy = np.arange(1.0, y.size + 1).reshape(y.shape)
        (dx,) = max_pool_backward(dy, cache)
        y_t, dx_t = torch_max(torch, x, dy, k, s, p, 1, False)
        np.testing.assert_array_equal(y, y_t)
        np.testing.assert_array_equal(dx, dx_t)
    x = np.full((1, 1, 4, 4), -np.inf)  # every window is -inf: δ goes to its first real cell
    y, cache = max_pool_forward(x, 2, 2, 1)
    (dx,) = max_pool_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx, torch_max(torch, x, np.ones_like(y), 2, 2, 1, 1, False)[1])


@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", MAX_CASES[::3], ids=ids(MAX_CASES[::3]))
def test_max_pool_without_argmax_gives_the_same_bits(shape, k, s, p, d, ceil_mode):
    """Inference skips the argmax: same y bit for bit (NaN, ±0, ±inf, ties), and a backward
    pass after it finds the argmax from the cached input."""
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, size=shape).astype(np.float32)  # many ties
    x.flat[: min(x.size, 6)] = [np.nan, -0.0, 0.0, np.inf, -np.inf, np.nan][: min(x.size, 6)]
    y, cache = max_pool_forward(x, k, s, p, d, ceil_mode)
    y2, lazy = max_pool_forward(x, k, s, p, d, ceil_mode, argmax=False)
    assert lazy.argmax is None and lazy.x is x and cache.argmax is not None and cache.x is None
    assert y2.dtype == y.dtype and y2.shape == y.shape
    np.testing.assert_array_equal(y2.view(np.uint32), y.view(np.uint32))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(max_pool_backward(dy, lazy)[0], max_pool_backward(dy, cache)[0])
    found = max_pool_argmax(lazy)  # what a caller keeps for further backward passes
    assert found.x is None and max_pool_argmax(found) is found
    np.testing.assert_array_equal(found.argmax, cache.argmax)


# --- mean pooling ------------------------------------------------------------------------------


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p,ceil_mode", AVG_CASES, ids=ids(AVG_CASES))
def test_avg_pool_matches_naive_and_torch(shape, k, s, p, ceil_mode, count_include_pad):
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal(shape)
    y, cache = avg_pool_forward(x, k, s, p, ceil_mode, count_include_pad)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    (dx,) = avg_pool_backward(dy, cache)
    y_ref, dx_ref = naive_avg_pool(x, dy, k, s, p, ceil_mode, count_include_pad)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    y_t, dx_t = torch_avg(torch, x, dy, k, s, p, ceil_mode, count_include_pad)
    np.testing.assert_allclose(y, y_t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p,ceil_mode", AVG_CASES[::9], ids=ids(AVG_CASES[::9]))
def test_avg_pool_gradcheck(shape, k, s, p, ceil_mode, count_include_pad):
    x = np.random.default_rng(2).standard_normal(shape)

    def forward(r):
        y, cache = avg_pool_forward(x, k, s, p, ceil_mode, count_include_pad)
        return y, (None if r is None else avg_pool_backward(r, cache))

    check_grads(forward, [x])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p,ceil_mode", AVG_CASES[::5], ids=ids(AVG_CASES[::5]))
def test_avg_pool_float32_torch(shape, k, s, p, ceil_mode, count_include_pad):
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y, cache = avg_pool_forward(x, k, s, p, ceil_mode, count_include_pad)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    (dx,) = avg_pool_backward(dy, cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    y_t, dx_t = torch_avg(torch, x, dy, k, s, p, ceil_mode, count_include_pad)
    np.testing.assert_allclose(y, y_t, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "n,k,s,p,expected_true,expected_false",
    [
        (5, 3, 2, 1, [2 / 3, 1, 2 / 3], [1, 1, 1]),  # last window: 2 real + 1 pad cell
        (4, 3, 2, 0, [1, 1], [1, 1]),  # last window hangs past the input: clipped divisor
        (6, 4, 3, 2, [0.5, 1, 0.5], [1, 1, 1]),
    ],
)
def test_avg_pool_ceil_mode_divisor(n, k, s, p, expected_true, expected_false):
    x = np.ones((1, 1, n))
    np.testing.assert_allclose(avg_pool_forward(x, k, s, p, True, True)[0][0, 0], expected_true)
    np.testing.assert_allclose(avg_pool_forward(x, k, s, p, True, False)[0][0, 0], expected_false)


# --- global pooling ----------------------------------------------------------------------------


def naive_global(x, dy, kind):
    y = np.zeros(x.shape[:2] + (1,) * (x.ndim - 2), x.dtype)
    dx = np.zeros_like(x)
    for n, c in np.ndindex(*x.shape[:2]):
        cells = list(np.ndindex(*x.shape[2:]))
        if kind == "avg":
            y[n, c] = sum(x[(n, c, *i)] for i in cells) / len(cells)
            for i in cells:
                dx[(n, c, *i)] = dy[n, c].item() / len(cells)
        else:
            arg = cells[0]
            for i in cells:
                if x[(n, c, *i)] > x[(n, c, *arg)] or np.isnan(x[(n, c, *i)]):
                    arg = i
            y[n, c] = x[(n, c, *arg)]
            dx[(n, c, *arg)] = dy[n, c].item()
    return y, dx


GLOBAL = {
    "avg": (global_avg_pool_forward, global_avg_pool_backward, "adaptive_avg_pool"),
    "max": (global_max_pool_forward, global_max_pool_backward, "adaptive_max_pool"),
}


def torch_global(torch, x, dy, kind):
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, f"{GLOBAL[kind][2]}{x.ndim - 2}d")(tx, 1)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 2, 5, 6), (2, 2, 3, 4, 5)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool_matches_naive_and_torch(kind, shape, dtype):
    torch = torch_or_skip()
    forward, backward, _ = GLOBAL[kind]
    x = distinct(shape, dtype=dtype)
    y, cache = forward(x)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    (dx,) = backward(dy, cache)
    assert y.shape == shape[:2] + (1,) * (len(shape) - 2)
    assert y.dtype == dtype and dx.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for ref_y, ref_dx in [naive_global(x, dy, kind), torch_global(torch, x, dy, kind)]:
        np.testing.assert_allclose(y, ref_y, rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool_gradcheck_and_high_rank(kind):
    forward, backward, _ = GLOBAL[kind]
    for shape in [(2, 3, 2, 3), (1, 2, 2, 2, 2, 3)]:  # rank 6: four spatial axes
        x = distinct(shape, seed=4)

        def fwd(r, x=x):
            y, cache = forward(x)
            return y, (None if r is None else backward(r, cache))

        check_grads(fwd, [x])
        dy = np.random.default_rng(0).standard_normal(fwd(None)[0].shape)
        y_ref, dx_ref = naive_global(x, dy, kind)
        np.testing.assert_allclose(fwd(None)[0], y_ref, rtol=1e-12)
        np.testing.assert_allclose(fwd(dy)[1][0], dx_ref, rtol=1e-12)


def test_global_max_pool_ties_and_nan_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2, (3, 2, 3, 3)).astype(np.float64)
    x[0, 0] = 0.0
    x[1, 1, 0, 1] = x[1, 1, 2, 2] = np.nan  # PyTorch keeps the last NaN
    y, cache = global_max_pool_forward(x)
    dy = rng.integers(1, 9, y.shape).astype(np.float64)
    (dx,) = global_max_pool_backward(dy, cache)
    y_t, dx_t = torch_global(torch, x, dy, "max")
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(dx, dx_t)
    assert np.count_nonzero(dx) == 6  # one input per (n, c)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kernel_size=2, padding=2), "at most half of kernel_size"),
        (dict(kernel_size=3, padding=-1), "at most half of kernel_size"),
        (dict(kernel_size=0), "kernel_size must be positive"),
        (dict(kernel_size=2, stride=0), "stride must be positive"),
        (dict(kernel_size=(2, 2)), "kernel_size must be an int or a tuple of 1 ints"),
        (dict(kernel_size=9), "larger than the padded input"),
    ],
)
@pytest.mark.parametrize("op", [max_pool_forward, avg_pool_forward])
def test_pool_op_errors(op, kwargs, match):
    with pytest.raises(ValueError, match=match):
        op(np.zeros((1, 1, 5)), **kwargs)


def test_pool_op_rank_errors():
    with pytest.raises(ValueError, match=r"\(N, C, \*spatial\). Received: \(3, 4\)"):
        max_pool_forward(np.zeros((3, 4)), 2)
    with pytest.raises(ValueError, match=r"\(N, C, \*spatial\). Received: \(3, 4\)"):
        global_avg_pool_forward(np.zeros((3, 4)))


def test_float32_dy_float64_keeps_float32():
    x = distinct((1, 2, 6, 6), dtype=np.float32)
    for forward, backward in [
        (lambda x: max_pool_forward(x, 2), max_pool_backward),
        (lambda x: avg_pool_forward(x, 3, 2, 1), avg_pool_backward),
        (global_max_pool_forward, global_max_pool_backward),
        (global_avg_pool_forward, global_avg_pool_backward),
    ]:
        y, cache = forward(x)
        (dx,) = backward(np.ones(y.shape), cache)
        assert y.dtype == np.float32 and dx.dtype == np.float32 and dx.shape == x.shape
