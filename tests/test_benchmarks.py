"""Smoke test of ``python -m benchmarks``: every workload runs one tiny step; no timings checked."""

from __future__ import annotations

import json
import time

import pytest

from benchmarks import harness, memory
from benchmarks.__main__ import WORKLOADS, main


def test_every_workload_runs_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    argv = ["--steps", "1", "--warmup", "0", "--settle", "0", "--batch", "2", "--memory-steps", "0"]
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
    argv = ["--steps", "1", "--warmup", "0", "--settle", "0", "--batch", "2", "--only", "mlp"]
    report = main([*argv, "--no-torch"])
    assert [r["name"] for r in report["results"]] == ["mlp_train_b128"]
    assert report["results"][0]["torch_ms"] is None and report["memory"] == []


def test_memory_child_reports_peak_rss():
    row = memory.measure("deltanet", batch=2, steps=1)
    assert row["framework"] == "deltanet" and row["peak_mib"] >= row["base_mib"] > 0


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--settle", "-1"]])
def test_bad_steps_or_settle_is_a_usage_error(argv):
    with pytest.raises(SystemExit):
        main(argv)


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
    r = harness.compare("x", 1, ours, theirs, steps=20, warmup=0, block=5, settle=0.0)
    # blocks: deltanet 2, 2, 6, 6 and PyTorch 1, 3, 3, 3 -> pairs 2, 0.67, 2, 2
    assert r.paired_ratio == pytest.approx(2.0)
    assert r.ratio == pytest.approx(4.0 / 3.0)  # medians 4 and 3: the load fell unevenly


def test_each_block_starts_after_settle_seconds_of_untimed_steps(monkeypatch):
    """The other framework's spinning threads must be quiet before a block is timed."""
    events = []  # (framework, time, timed) per call

    def step(name):
        return lambda: events.append([name, time.perf_counter(), False])

    def timed(fn):
        fn()
        events[-1][2] = True
        return 1.0

    monkeypatch.setattr(harness, "_time", timed)
    harness.compare("x", 1, step("ours"), step("theirs"), steps=2, warmup=0, block=1, settle=0.05)
    timed_at = [i for i, e in enumerate(events) if e[2]]
    assert [events[i][0] for i in timed_at] == ["ours", "theirs", "ours", "theirs"]
    for i in timed_at:  # the untimed run of the same framework right before it
        j = i
        while j > 0 and events[j - 1][0] == events[i][0] and not events[j - 1][2]:
            j -= 1
        assert j < i and events[i][1] - events[j][1] >= 0.05
