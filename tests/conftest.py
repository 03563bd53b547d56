"""Fixtures shared by the test folders."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["numpy", "numba"])
def engine(request, monkeypatch):
    """Run a test once with ``deltanet.fast``'s NumPy paths and once with its numba kernels.

    A test opts in by naming ``engine``; the numba run is skipped without numba.
    """
    if request.param == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("DELTANET_NUMBA", "0" if request.param == "numpy" else "1")
    return request.param


@pytest.fixture
def numba_on(monkeypatch):
    """The numba kernels on (the test is skipped without numba)."""
    pytest.importorskip("numba")
    monkeypatch.setenv("DELTANET_NUMBA", "1")
