"""The fast paths: the same ops as ``deltanet.ops``, with the same signatures and caches, faster.

``deltanet.ops`` is the NumPy reference that ``docs/backprop.md`` links to. This package holds
what makes the same numbers fast, and the tests compare each fast path with the reference:

- ``conv.py``, ``pool.py``, ``activations.py``: the entry points, named as in ``ops/``;
- ``plan.py``: which path runs for which shape, every threshold in one table;
- ``memory.py``: glibc told to keep freed arrays for the next step (``import deltanet`` runs it);
- ``conv_chunked.py``, ``conv_direct.py``, ``thin_matmul.py``, ``im2col.py``: the paths;
- ``*_numba.py``: numba kernels, imported only inside the functions that need them, after
  ``enabled()`` said yes, so ``import deltanet`` never imports numba (about 0.5 s).

numba is a dependency of deltanet, so an ordinary install has the kernels. ``enabled()`` is
False without numba (deltanet then says so once, on stderr), after ``set_enabled(False)``, or
when the environment sets ``DELTANET_NUMBA=0`` (the default that ``set_enabled(None)``
restores); the planned NumPy paths (chunks, BLAS products) run then.
See ``docs/performance.md`` for what each path does and what it was measured to gain.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

_choice: bool | None = None  # set_enabled's choice; None: DELTANET_NUMBA decides
_told = False  # whether the fallback to the NumPy paths was reported (once a process)

FALLBACK_NOTE = (
    "deltanet: numba is not installed, so every layer runs its NumPy reference code "
    "(correct, 2-3x slower): pip install numba"
)


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    """Whether the numba kernels run: numba is installed and neither ``set_enabled(False)`` nor
    ``DELTANET_NUMBA=0`` turned them off."""
    wanted = _choice if _choice is not None else os.environ.get("DELTANET_NUMBA", "1") != "0"
    if wanted and not _numba_installed():
        _tell_fallback()
        return False
    return wanted


def _tell_fallback() -> None:
    """Say once, on stderr, that the fast kernels are missing (a choice to turn them off is not
    reported: ``DELTANET_NUMBA=0`` or ``set_enabled(False)``)."""
    global _told
    if not _told:
        _told = True
        print(FALLBACK_NOTE, file=sys.stderr)


def set_enabled(flag: bool | None) -> None:
    """Run the numba kernels (True), the NumPy code (False), or as ``DELTANET_NUMBA`` says."""
    global _choice
    if flag is not None and not isinstance(flag, bool):
        raise TypeError(f"set_enabled expects True, False or None. Received: {flag!r}.")
    if flag and not _numba_installed():
        raise ValueError(
            "set_enabled(True): numba is not installed. Install it with pip install numba."
        )
    _choice = flag


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit(*args, cache=True, **kwargs)``: for kernel modules, imported when enabled."""
    import numba

    kwargs.setdefault("cache", True)
    return numba.njit(*args, **kwargs)


def lift3d(t: Sequence[int]) -> tuple[int, ...]:
    """A 1-D or 2-D geometry as 3-D, leading sizes 1 (the numba kernels are written for 3-D)."""
    return (1,) * (3 - len(t)) + tuple(t)


def __getattr__(name: str) -> Any:
    # ``from deltanet.fast import prange`` in a kernel module: numba's own prange object,
    # which numba recognises inside compiled code.
    if name == "prange":
        import numba

        return numba.prange
    raise AttributeError(f"module 'deltanet.fast' has no attribute {name!r}")
