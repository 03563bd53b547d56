"""MPI collectives that never hang, and fingerprints that the ranks compare.

mpi4py is imported lazily (``pip install "deltanet[mpi]"``). Without it, ``rank()`` is 0 and
``world_size()`` is 1, and everything here runs as one process.

Faults never hang the job: a collective that waits longer than ``DELTANET_MPI_TIMEOUT``
seconds (default 600) prints which rank gave up and calls ``MPI Abort``. ``check_consistent``
compares fingerprints (seed, model, data, settings) across ranks before training and raises the
same clear error on all.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

TIMEOUT_ENV = "DELTANET_MPI_TIMEOUT"
DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait: longer than any checkpoint write
_PREVIEW = 32  # bytes of each fingerprint shown in a mismatch error
_MESSAGE = 480  # bytes of a rank's error message carried to the others


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(
            'deltanet.distributed needs mpi4py and an MPI library: pip install "deltanet[mpi]".'
        ) from err
    return MPI


def available() -> bool:
    """Whether mpi4py imports (it is the optional extra ``deltanet[mpi]``)."""
    try:
        _mpi()
    except ImportError:
        return False
    return True


def require() -> None:
    """Raise a clear ImportError when mpi4py is missing."""
    _mpi()


def rank() -> int:
    """This process's rank in ``MPI.COMM_WORLD`` (0 without mpi4py)."""
    return _mpi().COMM_WORLD.Get_rank() if available() else 0


def world_size() -> int:
    """The number of ranks in ``MPI.COMM_WORLD`` (1 without mpi4py)."""
    return _mpi().COMM_WORLD.Get_size() if available() else 1


def shard(n: int, rank_: int | None = None, size: int | None = None) -> slice:
    """The rows ``[n r / N, n (r+1) / N)`` of an ``n``-row batch that rank ``r`` of ``N`` takes."""
    r = rank() if rank_ is None else rank_
    size = world_size() if size is None else size
    return slice(n * r // size, n * (r + 1) // size)


# --- faults ---------------------------------------------------------------------------------


def timeout() -> float:
    """Seconds a collective waits for the other ranks before aborting the job.

    Read from ``DELTANET_MPI_TIMEOUT`` (default 600). Raises ValueError when that variable is not a
    number > 0.
    """
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds. Received: {text!r}.")
    return value


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` with this rank's number to stderr and abort every rank (MPI Abort)."""
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    print(
        f"deltanet.distributed: rank {comm.Get_rank()} of {comm.Get_size()}: {message} "
        "Aborting all ranks (MPI Abort).",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    # mpiexec forwards the ranks' output asynchronously and stops forwarding once Abort kills the
    # job: without a pause, the message that says why was sometimes lost (seen in CI).
    time.sleep(0.5)
    comm.Abort(code)


def _wait(requests: list[Any], what: str) -> None:
    """Complete non-blocking requests, aborting the job if they take longer than ``timeout()``.

    A blocking MPI call would wait forever for a rank that died or raised; polling ``Testall``
    (which also drives MPI's progress, as a blocking wait would) bounds the wait. After a short
    busy poll it sleeps 0.1 ms between tests, leaving the core to ranks that still compute when
    there are more ranks than cores.
    """
    MPI = _mpi()
    limit = timeout()
    deadline = time.monotonic() + limit
    polls = 0
    while not MPI.Request.Testall(requests):
        polls += 1
        if polls > 200:
            time.sleep(1e-4)
        if time.monotonic() > deadline:
            abort(
                f"{what} waited {limit:g} s for the other ranks: one of them died, raised or "
                f"hangs (raise {TIMEOUT_ENV} if a rank legitimately needs longer)."
            )


def allreduce_sum(buffer: np.ndarray, what: str = "allreduce") -> np.ndarray:
    """Sum a contiguous array over all ranks, in place; returns it."""
    allreduce_many([buffer], what)
    return buffer


def allreduce_many(buffers: list[np.ndarray], what: str = "allreduce") -> None:
    """Sum each contiguous array over all ranks, in place, all of them in one wait."""
    if world_size() == 1:
        return
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    _wait([comm.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM) for b in buffers], what)


def broadcast_array(buffer: np.ndarray, root: int = 0, what: str = "broadcast") -> np.ndarray:
    """Overwrite a contiguous array with ``root``'s, in place, on every rank; returns it."""
    if world_size() > 1:
        _wait([_mpi().COMM_WORLD.Ibcast(buffer, root=root)], what)
    return buffer


def broadcast_text(text: str, root: int = 0) -> str:
    """``root``'s ``text`` on every rank (a run directory chosen by rank 0, for instance)."""
    if world_size() == 1:
        return text
    data = text.encode()
    size = broadcast_array(np.array([len(data)], np.int64), root, "broadcast_text")
    buffer = np.zeros(int(size[0]), np.uint8)
    if rank() == root:
        buffer[:] = np.frombuffer(data, np.uint8)
    return broadcast_array(buffer, root, "broadcast_text").tobytes().decode()


# --- consistency across ranks ---------------------------------------------------------------


def fingerprint_array(a: np.ndarray) -> str:
    """Shape, dtype and a BLAKE2 digest of the bytes: equal arrays give equal strings."""
    a = np.ascontiguousarray(a)
    # a.data: the array's own memory as a memoryview (no copy), which the type stubs accept
    # where the ndarray itself is not a Buffer before Python 3.12.
    digest = hashlib.blake2b(a.data.cast("B"), digest_size=16).hexdigest()
    return f"{a.shape} {a.dtype} {digest}"


def check_consistent(fields: Mapping[str, str], error: BaseException | None = None) -> None:
    """Raise on every rank if any rank reported an ``error`` or ``fields`` differ across ranks.

    ``fields`` maps a name to a string (a seed, a fingerprint); every rank must pass the same
    names. Only digests travel (a fixed-size buffer per rank). This rank's own error is
    re-raised as is; another rank's becomes a RuntimeError naming it; a mismatch a ValueError.
    """
    if world_size() == 1:
        if error is not None:
            raise error
        return
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    names = sorted(fields)
    row = _encode(names, fields, error)
    table = np.zeros((comm.Get_size(), row.size), np.uint8)
    _wait([comm.Iallgather(row, table)], "check_consistent")
    if error is not None:
        raise error
    for r, other in enumerate(table):
        if other[0]:
            message = bytes(other[-_MESSAGE:]).rstrip(b"\0").decode(errors="replace")
            raise RuntimeError(f"distributed: rank {r} of {len(table)} failed: {message}")
    problems = []
    for j, name in enumerate(names):
        start = 1 + j * (16 + _PREVIEW)
        cols = table[:, start : start + 16 + _PREVIEW]
        differ = [r for r in range(len(table)) if not np.array_equal(cols[r], cols[0])]
        if differ:
            shown = [bytes(c[16:]).rstrip(b"\0").decode(errors="replace") for c in cols]
            values = ", ".join(f"rank {r}: {shown[r]!r}" for r in [0, *differ])
            problems.append(f"{name} differs ({values})")
    if problems:
        raise ValueError(
            "distributed: the ranks disagree before training; every rank must run the same "
            f"seed, model, data and settings. {'; '.join(problems)}."
        )


def _encode(names: list[str], fields: Mapping[str, str], error: BaseException | None):
    parts = [np.array([error is not None], np.uint8)]
    for name in names:
        text = str(fields[name]).encode()
        parts.append(np.frombuffer(hashlib.blake2b(text, digest_size=16).digest(), np.uint8))
        parts.append(np.frombuffer(text[:_PREVIEW].ljust(_PREVIEW, b"\0"), np.uint8))
    message = b"" if error is None else f"{type(error).__name__}: {error}".encode()
    parts.append(np.frombuffer(message[:_MESSAGE].ljust(_MESSAGE, b"\0"), np.uint8))
    return np.concatenate(parts)
