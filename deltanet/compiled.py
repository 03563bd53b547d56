"""Optional compiled kernels through numba, with the NumPy code kept as the tested reference.

A kernel module (``ops/pool_kernels.py``, ``binary/compiled_kernels.py``, ...) decorates its
functions with ``njit`` and uses ``prange``; it is imported only inside the functions that need
it, after ``enabled()`` said yes, so ``import deltanet`` never imports numba (about 0.5 s).
``enabled()`` is False without numba (``pip install "deltanet[fast]"``) or when the environment
sets ``DELTANET_NUMBA=0``, which the tests use to run the NumPy paths.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Any


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    """Whether compiled kernels run: numba is installed and ``DELTANET_NUMBA`` is not ``0``."""
    return os.environ.get("DELTANET_NUMBA", "1") != "0" and _numba_installed()


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit(*args, cache=True, **kwargs)``: for kernel modules, imported when enabled."""
    import numba

    kwargs.setdefault("cache", True)
    return numba.njit(*args, **kwargs)


def __getattr__(name: str) -> Any:
    # ``from deltanet.compiled import prange`` in a kernel module: numba's own prange object,
    # which numba recognises inside compiled code.
    if name == "prange":
        import numba

        return numba.prange
    raise AttributeError(f"module 'deltanet.compiled' has no attribute {name!r}")
