"""Smoke test of ``python -m benchmarks``: every workload runs one tiny step; no timings checked."""

from __future__ import annotations

import json

import pytest

from benchmarks import harness, memory
from benchmarks.__main__ import WORKLOADS, main


def test_every_workload_runs_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    argv = ["--steps", "1", "--warmup", "0", "--batch", "2", "--memory-steps", "0"]
    report = main([*argv, "--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(report))
    names = [r["name"] for r in saved["results"]]
    assert names == [w.name for w in WORKLOADS]
    for row in saved["results"]:
        assert row["deltanet_ms"] > 0 and row["torch_ms"] > 0 and row["ratio"] > 0
        assert row["paired_ratio"] > 0
        assert row["batch"] == 2
    assert "| lenet5_train_b64 |" in capsys.readouterr().out


def test_only_filter_and_no_torch(capsys):
    report = main(["--steps", "1", "--warmup", "0", "--batch", "2", "--only", "mlp", "--no-torch"])
    assert [r["name"] for r in report["results"]] == ["mlp_train_b128"]
    assert report["results"][0]["torch_ms"] is None and report["memory"] == []


def test_memory_child_reports_peak_rss():
    row = memory.measure("deltanet", batch=2, steps=1)
    assert row["framework"] == "deltanet" and row["peak_mib"] >= row["base_mib"] > 0


def test_bad_steps_is_a_usage_error():
    with pytest.raises(SystemExit):
        main(["--steps", "0"])


def test_paired_ratio_compares_blocks_that_ran_together(monkeypatch):
    """The machine turns 3x slower between two blocks of one pair: the paired ratio stays 2."""
    state = {"theirs_calls": 0}

    def ours():
        pass

    def theirs():
        state["theirs_calls"] += 1

    def timed(fn):  # fake durations: deltanet 2 ms, PyTorch 1 ms, 3x both once the load comes
        fn()
        slow = 3.0 if state["theirs_calls"] > 6 else 1.0  # from PyTorch's second block on
        return (2.0 if fn is ours else 1.0) * slow

    monkeypatch.setattr(harness, "_time", timed)
    r = harness.compare("x", 1, ours, theirs, steps=20, warmup=0, block=5)
    # blocks: deltanet 2, 2, 6, 6 and PyTorch 1, 3, 3, 3 -> pairs 2, 0.67, 2, 2
    assert r.paired_ratio == pytest.approx(2.0)
    assert r.ratio == pytest.approx(4.0 / 3.0)  # medians 4 and 3: the load fell unevenly
