"""``thin_matmul.matmul_nt``: the compiled dot products against ``a @ b.T``."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.fast import thin_matmul


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize(
    "m, n, k", [(6, 25, 5000), (1, 1, 4096), (16, 16, 9001), (7, 5, 4100), (2, 4, 6000)]
)
def test_compiled_dot_products_match_blas(numba_on, m, n, k, dtype, tol):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype)
    got = thin_matmul.matmul_nt(a, b)
    ref = a @ b.T
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.sqrt(k))


def test_nan_and_inf_propagate(numba_on):
    a = np.ones((2, 5000), np.float32)
    b = np.ones((3, 5000), np.float32)
    a[0, 4321] = np.nan
    b[2, 17] = np.inf
    got = thin_matmul.matmul_nt(a, b)
    with np.errstate(invalid="ignore"):  # NaN * 1 and inf * NaN: expected here
        ref = a @ b.T
    np.testing.assert_array_equal(got, ref)  # NaN row 0, inf in column 2 of row 1


def test_large_results_and_short_contractions_stay_with_blas(numba_on, monkeypatch):
    from deltanet.fast import thin_matmul_numba

    calls = []
    monkeypatch.setattr(thin_matmul_numba, "matmul_nt", lambda *args: calls.append(args))
    rng = np.random.default_rng(1)
    for m, n, k in [(20, 20, 5000), (4, 4, 100)]:
        a, b = rng.standard_normal((m, k)), rng.standard_normal((n, k))
        np.testing.assert_allclose(thin_matmul.matmul_nt(a, b), a @ b.T)
    a = rng.standard_normal((3, 5000))
    np.testing.assert_allclose(thin_matmul.matmul_nt(a, a[:, ::-1]), a @ a[:, ::-1].T)
    assert calls == []  # neither a large result, a short contraction nor a strided operand


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("s, n, p", [(53, 6, 784), (3, 4, 2500), (7, 1, 700)])
def test_sample_major_b_is_read_in_place(numba_on, s, n, p, dtype, tol):
    """``b (S, N, P)``, as a layer holds δy: the same product as its (N, S*P) transposed copy."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((25, s * p)).astype(dtype)
    b = rng.standard_normal((s, n, p)).astype(dtype)
    ref = a @ np.ascontiguousarray(b.transpose(1, 0, 2)).reshape(n, -1).T
    got = thin_matmul.matmul_nt(a, b)
    assert got.dtype == dtype and got.shape == (25, n)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.sqrt(s * p))


def test_sample_major_b_without_numba_and_mismatched_lengths(monkeypatch):
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((4, 3 * 5000)), rng.standard_normal((3, 2, 5000))
    np.testing.assert_allclose(
        thin_matmul.matmul_nt(a, b), a @ b.transpose(1, 0, 2).reshape(2, -1).T
    )
    with pytest.raises(ValueError, match=r"matmul_nt: a is \(4, 15000\), b is \(3, 2, 4999\)"):
        thin_matmul.matmul_nt(a, b[..., 1:])
