"""Smoke tests of ``python -m benchmarks``: the harness runs, reports the machine and writes
JSON; each workload's step runs in both frameworks. No timing is checked."""

from __future__ import annotations

import json
import time

import pytest

from benchmarks import __main__ as bench
from benchmarks import child, harness, machine, mainjob, memory
from benchmarks.__main__ import NAMES, WORKLOADS, main
from tests.utils import torch_or_skip

TINY = ["--rounds", "1", "--steps", "1", "--warmup", "0", "--settle", "0"]


def test_harness_runs_each_framework_in_its_own_process_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    report = main([*TINY, "--batch", "2", "--only", "lenet5_train_b64", "--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["mode"] == "separate processes"
    [row] = saved["results"]
    assert row["name"] == "lenet5_train_b64" and row["batch"] == 2
    assert row["deltanet_ms"] > 0 and row["torch_ms"] > 0 and row["ratio"] > 0
    assert row["deltanet_peak_mib"] > 0 and row["torch_peak_mib"] > 0
    assert [r["framework"] for r in saved["runs"]] == ["deltanet", "torch"]
    m = saved["machine"]
    assert m["cpu_model"] and m["logical_cores"] >= 1 and isinstance(m["isa"], list)
    assert m["threads"] >= 1 and m["numpy_side"]["numpy"] and m["torch_side"]["torch"]
    assert all(r["threads"] == m["threads"] for r in saved["runs"])
    out = capsys.readouterr().out
    assert "machine: " in out and "PyTorch: " in out and "| lenet5_train_b64 | 2 |" in out


def test_main_job_row_measures_images_per_second_after_the_first_epoch():
    pytest.importorskip("torch")
    report = main([*TINY, "--batch", "256", "--epochs", "2", "--only", "main_job"])
    [row] = report["results"]
    assert row["name"] == mainjob.NAME and row["batch"] == 256
    for run in report["runs"]:
        assert len(run["epoch_images_per_s"]) == 2
        assert run["images_per_s"] == run["epoch_images_per_s"][1]


@pytest.mark.parametrize("name", [w.name for w in WORKLOADS])
def test_every_workload_step_runs_in_both_frameworks(name):
    pytest.importorskip("torch")
    for fw in ("deltanet", "torch"):
        argv = ["--framework", fw, "--workload", name, "--steps", "1", "--warmup", "0"]
        row = child.run(child.parse([*argv, "--settle", "0", "--batch", "2"]))
        assert row["median_ms"] > 0 and row["batch"] == 2 and row["peak_mib"] > 0


def test_rounds_alternate_which_framework_goes_first(monkeypatch):
    calls = []

    def fake(framework, name, args, threads):
        calls.append((framework, name, threads))
        ms = 2.0 if framework == "deltanet" else 1.0
        return {"framework": framework, "workload": name, "batch": 1, "median_ms": ms,
                "images_per_s": 1000 / ms, "peak_mib": 10.0, "threads": threads,
                "env": {"numpy": "x", "threadpools": [], "numba": None, "deltanet_fast": False}
                if framework == "deltanet" else None}  # fmt: skip

    monkeypatch.setattr(bench, "run_child", fake)
    monkeypatch.setattr(machine, "torch_summary", lambda info: "fake")
    report = main(["--rounds", "3", "--threads", "2", "--only", "mlp"])
    assert [c[0] for c in calls] == ["deltanet", "torch", "torch", "deltanet", "deltanet", "torch"]
    assert {c[2] for c in calls} == {2}
    [row] = report["results"]
    assert row["ratio"] == pytest.approx(2.0) and row["deltanet_ms_spread"] == [2.0, 2.0]


def test_summarize_medians_spread_and_ratio():
    runs = [
        {"framework": fw, "batch": 4, "median_ms": ms, "images_per_s": 4000 / ms, "peak_mib": p}
        for fw, ms, p in [("deltanet", 3, 5), ("deltanet", 9, 6), ("deltanet", 4, 5),
                          ("torch", 2, 8), ("torch", 1, 9), ("torch", 5, 8)]
    ]  # fmt: skip
    row = harness.summarize("w", runs, 1.0)
    assert row["deltanet_ms"] == 4 and row["torch_ms"] == 2 and row["ratio"] == 2
    assert row["deltanet_ms_spread"] == [3, 9] and row["torch_ms_spread"] == [1, 5]
    assert row["deltanet_peak_mib"] == 6 and row["torch_peak_mib"] == 9
    assert "| w | 4 | 4.00 | 3.00-9.00 | 2.00 | 1.00-5.00 | 2.00 |" in (
        harness.format_rounds_table([row])
    )


def test_machine_info():
    info = machine.cpu()
    assert info["cpu_model"] and info["logical_cores"] >= 1
    assert machine.isa_summary(["avx2", "avx512f"]).startswith("AVX-512")
    assert machine.isa_summary(["avx2"]) == "AVX2"
    side = machine.numpy_side()
    assert side["numpy"] and isinstance(side["deltanet_fast"], bool)


def test_only_filter_and_no_torch_in_the_shared_process_mode():
    argv = ["--steps", "1", "--warmup", "0", "--settle", "0", "--batch", "2", "--only", "mlp"]
    report = main([*argv, "--no-torch", "--shared-process"])
    assert report["mode"] == "shared process"
    assert [r["name"] for r in report["results"]] == ["mlp_train_b128"]
    assert report["results"][0]["torch_ms"] is None


def test_workload_names_are_unique():
    assert len(set(NAMES)) == len(NAMES) and NAMES[-1] == mainjob.NAME


def test_memory_child_reports_peak_rss():
    row = memory.measure("deltanet", batch=2, steps=1)
    assert row["framework"] == "deltanet" and row["peak_mib"] >= row["base_mib"] > 0


@pytest.mark.parametrize(
    "argv", [["--steps", "0"], ["--settle", "-1"], ["--rounds", "0"], ["--epochs", "1"]]
)
def test_bad_arguments_are_usage_errors(argv):
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


def test_main_job_twin_trains_with_the_main_jobs_recipe_and_crops():
    torch = torch_or_skip()

    assert mainjob.SETTINGS["augment"] != "none"  # the recipe's augmentation is on both sides
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    out = mainjob._augment(x, 1, torch.Generator().manual_seed(0), torch)
    for i in range(2):  # each example is a 3x3 window of its own zero-padded copy
        padded = torch.nn.functional.pad(x[i, 0], (1, 1, 1, 1))
        windows = [padded[r : r + 3, c : c + 3] for r in range(3) for c in range(3)]
        assert any(torch.equal(out[i, 0], w) for w in windows)
    with pytest.raises(ValueError, match="cropP only"):
        mainjob._crop_padding("flip")
