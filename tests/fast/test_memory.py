"""``fast/memory.py``: glibc's thresholds raised once, and left alone where the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

from deltanet.fast import memory


def test_runs_once_a_process():
    """``import deltanet`` already ran it: a second call does nothing."""
    assert memory._done
    assert memory.keep_freed_memory() is False


def _fresh(env: dict[str, str]) -> str:
    code = "import deltanet.fast.memory as m; print(m.applied)"  # import deltanet ran it
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_environment_can_say_no():
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    base.pop("DELTANET_MALLOC", None)
    assert _fresh({**base, "DELTANET_MALLOC": "0"}) == "False"
    assert _fresh({**base, "MALLOC_TRIM_THRESHOLD_": "1000000"}) == "False"
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert _fresh(base) == "True"
