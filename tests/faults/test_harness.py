"""The fault harness itself: the memory cap stops a runaway allocation, errors are judged."""

import subprocess

import pytest

from tests.faults.harness import assert_clean_error, run_python, snapshot


def test_the_memory_cap_stops_a_runaway_allocation(tmp_path):
    proc = run_python("import numpy as np; np.ones(4 * 1024**3, np.uint8)", cwd=tmp_path)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


def test_assert_clean_error_rejects_a_traceback_and_a_success(tmp_path):
    crash = run_python("raise ValueError('boom')", cwd=tmp_path)
    with pytest.raises(AssertionError, match="traceback reached the user"):
        assert_clean_error(crash, "boom")
    ok = subprocess.CompletedProcess([], 0, "fine", "")
    with pytest.raises(AssertionError, match="expected a failure"):
        assert_clean_error(ok)


def test_snapshot_sees_a_changed_byte(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    before = snapshot(tmp_path)
    (tmp_path / "a").write_bytes(b"2")
    assert snapshot(tmp_path) != before
