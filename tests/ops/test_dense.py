"""dense_forward / dense_backward: naive loops, central differences, PyTorch parity, dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.ops.dense import dense_backward, dense_forward
from tests.utils import check_grads, torch_or_skip

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-10}, np.float32: {"rtol": 1e-4, "atol": 1e-5}}


def _arrays(n, k_in, k_out, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k_in)).astype(dtype)
    w = rng.standard_normal((k_out, k_in)).astype(dtype)
    b = rng.standard_normal(k_out).astype(dtype)
    dy = rng.standard_normal((n, k_out)).astype(dtype)
    return x, w, b, dy


def _naive(x, w, b, dy):
    """y, dx, dw, db by explicit loops over every index."""
    n, k_in = x.shape
    k_out = w.shape[0]
    y = np.zeros((n, k_out))
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(k_out)
    for s in range(n):
        for j in range(k_out):
            y[s, j] = b[j] if b is not None else 0.0
            for i in range(k_in):
                y[s, j] += x[s, i] * w[j, i]
                dx[s, i] += dy[s, j] * w[j, i]
                dw[j, i] += dy[s, j] * x[s, i]
            db[j] += dy[s, j]
    return y, dx, dw, (db if b is not None else None)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 3, 5), (7, 6, 2)])
def test_matches_naive_loops(shape, bias):
    x, w, b, dy = _arrays(*shape)
    b = b if bias else None
    y, cache = dense_forward(x, w, b)
    dx, dw, db = dense_backward(dy, cache)
    ny, ndx, ndw, ndb = _naive(x, w, b, dy)
    np.testing.assert_allclose(y, ny, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ndx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, ndw, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(db, ndb, rtol=1e-12, atol=1e-12)
    else:
        assert db is None


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(bias):
    x, w, b, _ = _arrays(3, 4, 5, seed=1)
    inputs = [x, w, b] if bias else [x, w]

    def forward(dy):
        y, cache = dense_forward(x, w, b if bias else None)
        if dy is None:
            return y, None
        dx, dw, db = dense_backward(dy, cache)
        return y, [dx, dw, db] if bias else [dx, dw]

    check_grads(forward, inputs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_torch_parity(dtype, bias):
    torch = torch_or_skip()
    x, w, b, dy = _arrays(6, 7, 3, dtype=dtype, seed=2)
    b = b if bias else None
    y, cache = dense_forward(x, w, b)
    dx, dw, db = dense_backward(dy, cache)

    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    tb = torch.tensor(b, requires_grad=True) if bias else None
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(dw, tw.grad.numpy(), **TOL[dtype])
    if bias:
        np.testing.assert_allclose(db, tb.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    x, w, b, dy = _arrays(2, 3, 4, dtype=dtype)
    y, cache = dense_forward(x, w, b)
    assert y.dtype == dtype
    assert all(g.dtype == dtype for g in dense_backward(dy, cache))


def test_forward_does_not_modify_inputs():
    x, w, b, _ = _arrays(2, 3, 4)
    copies = [a.copy() for a in (x, w, b)]
    dense_forward(x, w, b)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape",
    [
        ((2, 3), (4, 5), None),
        ((3,), (4, 3), None),
        ((2, 3), (4, 3), (3,)),
        ((2, 3, 1), (4, 3), None),
    ],
)
def test_shape_errors(x_shape, w_shape, b_shape):
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    b = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError, match=r"dense_forward: expected .*Received"):
        dense_forward(x, w, b)
