"""Without numba every layer runs the NumPy reference, and deltanet says so once, on stderr."""

from __future__ import annotations

import pytest

from deltanet import fast
from tests.faults.harness import run_python


@pytest.fixture
def no_numba(monkeypatch):
    monkeypatch.setattr(fast, "_numba_installed", lambda: False)
    monkeypatch.setattr(fast, "_told", False)
    monkeypatch.setattr(fast, "_choice", None)
    monkeypatch.delenv("DELTANET_NUMBA", raising=False)


def test_the_fallback_is_reported_once(no_numba, capsys):
    assert not fast.enabled() and not fast.enabled()
    assert capsys.readouterr().err == fast.FALLBACK_NOTE + "\n"


def test_turning_the_kernels_off_is_a_choice_not_reported(no_numba, monkeypatch, capsys):
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    assert not fast.enabled()
    fast.set_enabled(False)
    assert not fast.enabled()
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="numba is not installed. Install it with pip install"):
        fast.set_enabled(True)


def test_a_process_without_numba_trains_and_says_so_once(tmp_path):
    proc = run_python(
        """
        import sys
        sys.modules["numba"] = None  # as if numba were not installed
        import numpy as np
        import deltanet as dn
        from deltanet.optim import SGD

        x = np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32)
        y = np.arange(32) % 2
        model = dn.Sequential(dn.Conv2D(1, 4, 3), dn.ReLU(), dn.MaxPool2D(2), dn.Flatten(),
                              dn.Dense(36, 2))
        dn.fit(model, "cross_entropy", SGD(model, lr=0.1), (x, y), epochs=2, batch_size=8,
               verbose=0)
        print(dn.evaluate(model, "cross_entropy", x, y)["accuracy"] >= 0.5)
        """,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert proc.stderr.count("numba is not installed") == 1, proc.stderr
