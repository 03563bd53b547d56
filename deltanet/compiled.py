"""Optional compiled kernels through numba, with the NumPy code kept as the tested reference.

``njit(...)`` is ``numba.njit`` when numba imports (``pip install "deltanet[fast]"``) and
compiled kernels are enabled, else a decorator that leaves the function as it is, so a kernel
module still imports. Callers check ``enabled()`` and take their NumPy path when it is False.
Set ``DELTANET_NUMBA=0`` in the environment to force the NumPy paths (the tests run both).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

try:  # numba is optional: the NumPy paths need nothing beyond NumPy
    import numba as _numba
except ImportError:  # pragma: no cover - exercised on machines without numba
    _numba = None


def enabled() -> bool:
    """Whether compiled kernels run: numba imports and ``DELTANET_NUMBA`` is not ``0``."""
    return _numba is not None and os.environ.get("DELTANET_NUMBA", "1") != "0"


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit(*args, cache=True, **kwargs)``, or a no-op decorator without numba."""
    if _numba is not None:
        kwargs.setdefault("cache", True)
        return _numba.njit(*args, **kwargs)
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda fn: fn


# A kernel module does ``from deltanet.compiled import prange``: numba recognises its own prange
# object inside compiled code; without numba it is the built-in range.
prange = _numba.prange if _numba is not None else range
