"""``.npy`` files and ``.npz`` archives read with every size checked before it is allocated.

``np.load`` trusts what a file says: an ``.npy`` header claiming a 238 GiB array makes it
allocate 238 GiB, and an ``.npz`` member is inflated before its header is looked at. Here the
zip directory (each member's compression and its compressed and uncompressed sizes) and each
array's header (shape, dtype) are checked first, against each other, against the bytes the file
really holds and against ``max_bytes``; only then is anything decompressed. Nothing is ever
unpickled (``allow_pickle=False``), and files that would need it get our own message.
Every failure is a ``ValueError`` naming the file (``FileNotFoundError`` when there is none).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

MAGIC = b"\x93NUMPY"
# deflate cannot expand data more than ~1032:1 (258-byte matches in 2-bit codes); more is a lie.
DEFLATE_MAX_RATIO = 1032
_HEADER_MAX = 10_000  # bytes of a .npy header (NumPy's own default limit)


def format_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'``: sizes in messages."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header_length)`` of the .npy stream ``f`` at its start."""
    start = f.read(8)
    if start[:6] != MAGIC:
        raise ValueError(
            f"{where}: not a NumPy .npy array (it does not start with NumPy's magic string "
            "\\x93NUMPY). deltanet reads arrays saved with numpy.save and never unpickles a file."
        )
    version = (start[6], start[7]) if len(start) == 8 else None
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
        (3, 0): np.lib.format.read_array_header_2_0,  # 3.0: the same, utf-8 (ASCII here)
    }.get(version or (0, 0))
    if read is None:
        raise ValueError(f"{where}: unknown .npy format version {version}.")
    try:
        shape, _, dtype = read(f, max_header_size=_HEADER_MAX)
    except (ValueError, SyntaxError, TypeError, EOFError) as err:
        raise ValueError(f"{where}: damaged .npy header ({err}).") from None
    if dtype.hasobject:
        raise ValueError(
            f"{where}: holds object arrays, which need pickle (dtype {dtype}): refused, "
            "deltanet never unpickles data. Save numbers or strings instead."
        )
    return tuple(shape), dtype, f.tell()


def _check_size(
    where: str, shape: tuple[int, ...], dtype: np.dtype, data_bytes: int, max_bytes: int
) -> None:
    """The header's array must fill exactly the ``data_bytes`` that follow it, within bounds."""
    need = math.prod(shape) * dtype.itemsize
    what = f"an array of shape {shape} and dtype {dtype} ({format_bytes(need)})"
    if need != data_bytes:
        state = "only" if need > data_bytes else "but"
        raise ValueError(
            f"{where}: its header declares {what}, {state} {format_bytes(data_bytes)} of data "
            "follow it: the file is damaged or not what it claims."
        )
    if need > max_bytes:
        raise ValueError(
            f"{where}: holds {what}, more than deltanet reads ({format_bytes(max_bytes)})."
        )


def read_npy(path: str | os.PathLike, *, max_bytes: int) -> np.ndarray:
    """The array of an ``.npy`` file, its header checked against the file size and ``max_bytes``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no .npy file at {str(path)!r}.")
    with open(path, "rb") as f:
        shape, dtype, offset = _header(f, str(path))
        _check_size(str(path), shape, dtype, os.fstat(f.fileno()).st_size - offset, max_bytes)
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path}: damaged .npy file ({err}).") from None


def _members(zf: zipfile.ZipFile, where: str, allowed: Sequence[str] | None, max_bytes: int):
    """``{key: ZipInfo}`` of the archive's ``KEY.npy`` members, their declared sizes checked."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        key = info.filename.removesuffix(".npy")
        if key == info.filename or key in members:
            raise ValueError(
                f"{where}: member {info.filename!r} is not one .npy array of a distinct name "
                "(save the file with numpy.savez)."
            )
        members[key] = info
    unknown = sorted(set(members) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ValueError(
            f"{where}: unexpected arrays {unknown}. Expected: {', '.join(allowed or ())}."
        )
    for key, info in members.items():
        name = f"{where} (array {key!r})"
        if info.flag_bits & 0x1:
            raise ValueError(f"{name}: encrypted zip members are not supported.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(
                f"{name}: zip compression method {info.compress_type} is not supported "
                "(numpy.savez stores, numpy.savez_compressed deflates)."
            )
        limit = info.compress_size * (
            1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO
        )
        if info.file_size > limit + 1024:
            raise ValueError(
                f"{name}: declares {format_bytes(info.file_size)} uncompressed from "
                f"{format_bytes(info.compress_size)} compressed, more than its compression can "
                "produce: the archive is damaged or crafted."
            )
    total = sum(info.file_size for info in members.values())
    if total > max_bytes:
        sizes = ", ".join(f"{k} {format_bytes(i.file_size)}" for k, i in members.items())
        raise ValueError(
            f"{where}: its arrays take {format_bytes(total)} uncompressed ({sizes}), more than "
            f"deltanet loads ({format_bytes(max_bytes)}); refused before decompressing."
        )
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    with zf.open(info) as f:
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except ValueError as err:  # e.g. the data ends early: the zip directory lied
            raise ValueError(f"{name}: damaged ({err}).") from None


def read_npz(
    path: str | os.PathLike, *, max_bytes: int, allowed: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive; ``allowed``: the only array names accepted.

    Checked before anything is decompressed: the members are ``NAME.npy`` (stored or
    deflated, not encrypted), their declared uncompressed sizes are possible for their
    compressed sizes and sum to at most ``max_bytes``, and each member's ``.npy`` header
    declares exactly the bytes the member holds, with no Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no .npz file at {str(path)!r}.")
    where = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = _members(zf, where, allowed, max_bytes)
            for key, info in members.items():
                with zf.open(info) as f:
                    name = f"{where} (array {key!r})"
                    shape, dtype, offset = _header(f, name)
                    _check_size(name, shape, dtype, info.file_size - offset, max_bytes)
            return {k: _read_member(zf, i, f"{where} (array {k!r})") for k, i in members.items()}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{where}: not a readable .npz archive ({err}).") from None
