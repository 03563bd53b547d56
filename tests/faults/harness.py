"""Running a bad input as a user would: the CLI in a subprocess, or an API call in one, each
under a memory cap and a time limit, so that a regression fails fast instead of exhausting the
machine. Every fault test ends in a clear error or the documented behaviour; the helpers here
also say what the run left behind.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

# Generous for NumPy + the package (and torch-free); a run that needs more is the bug.
MEMORY_CAP_MB = 1536
TIME_LIMIT_S = 120


def _cap(memory_mb: int):
    def limit() -> None:
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return limit


def run_cli(
    *args: object, cwd: Path, memory_mb: int = MEMORY_CAP_MB, timeout: float = TIME_LIMIT_S
) -> subprocess.CompletedProcess[str]:
    """``python -m deltanet ARGS`` in ``cwd`` under the caps; returns the finished process."""
    return _run(["-m", "deltanet", *map(str, args)], cwd, memory_mb, timeout)


def run_python(
    code: str, *, cwd: Path, memory_mb: int = MEMORY_CAP_MB, timeout: float = TIME_LIMIT_S
) -> subprocess.CompletedProcess[str]:
    """Run a snippet of Python (dedented) in ``cwd`` under the caps."""
    return _run(["-c", textwrap.dedent(code)], cwd, memory_mb, timeout)


def _run(
    argv: list[str], cwd: Path, memory_mb: int, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python ARGV`` in ``cwd`` with one BLAS thread, under the memory cap and time limit."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_cap(memory_mb),
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A non-zero exit with a one-paragraph message that holds every fragment, no traceback."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"expected a failure, got exit 0:\n{out}"
    assert "Traceback" not in out, f"a traceback reached the user:\n{out}"
    for fragment in fragments:
        assert fragment in out, f"{fragment!r} not in:\n{out}"


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``root`` (to prove nothing was touched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
