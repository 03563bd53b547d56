"""The safetensors file format in NumPy: a strict reader, an atomic writer, no pickle.

Layout (https://github.com/huggingface/safetensors): 8 bytes little-endian ``u64`` N, then N
bytes of UTF-8 JSON ``{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...,
"__metadata__": {str: str}}`` padded with spaces so the data starts on an 8-byte boundary, then
the data section: raw little-endian bytes, offsets relative to its start.

The reader follows the reference implementation's rules and checks every size against the file
size *before* allocating anything, so a small hostile file can never make it allocate more than
the file holds. Like the reference, it requires the tensors to cover the data section exactly:
no overlaps, no gaps and no trailing bytes (a half-written or tampered file fails loudly instead
of loading with garbage after the last tensor).
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from deltanet.io.formats import identify

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
MAX_NDIM = 64  # NumPy's limit on the number of axes

# safetensors dtype name -> little-endian NumPy dtype.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in (
        ("BOOL", "?"), ("U8", "u1"), ("I8", "i1"), ("U16", "<u2"), ("I16", "<i2"),
        ("F16", "<f2"), ("U32", "<u4"), ("I32", "<i4"), ("F32", "<f4"),
        ("U64", "<u8"), ("I64", "<i8"), ("F64", "<f8"),
    )
}  # fmt: skip
_NAMES = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items()}

PathLike = str | os.PathLike


class FormatError(ValueError):
    """A model or tensor file that is malformed, inconsistent or not what was expected."""


# --- writing --------------------------------------------------------------------------------


def write_safetensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``tensors`` (name -> array) and ``metadata`` (str -> str) atomically to ``path``.

    Raises TypeError for ``tensors`` that is not a dict of arrays, a dtype safetensors cannot hold
    or ``metadata`` that is not str -> str; ValueError for an empty name or ``__metadata__``;
    OSError (naming ``path``) when the file cannot be written.
    """
    arrays = {name: _as_le_array(name, value) for name, value in _check_tensors(tensors).items()}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = _check_metadata(metadata)
    # Offsets in order of decreasing itemsize keep every tensor aligned to its itemsize.
    order = sorted(arrays, key=lambda n: -arrays[n].dtype.itemsize)
    offsets, begin = {}, 0
    for name in order:
        offsets[name] = [begin, begin + arrays[name].nbytes]
        begin += arrays[name].nbytes
    for name, a in arrays.items():  # the header lists tensors in the caller's order
        header[name] = {"dtype": _NAMES[a.dtype.kind, a.dtype.itemsize], "shape": list(a.shape)}
        header[name]["data_offsets"] = offsets[name]
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data section starts on an 8-byte boundary

    def write(f) -> None:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in order:
            f.write(arrays[name].reshape(-1).view(np.uint8).data)

    atomic_write(path, write)


def atomic_write(path: PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The data is flushed and fsynced before ``os.replace`` and the directory is fsynced after,
    so a crash leaves either the old file or the new one, never a mix. On any error the
    temporary file is removed and an existing ``path`` is left untouched. An ``OSError`` (no
    such directory, permission denied, disk full) names ``path``, never the temporary file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temps(directory, os.path.basename(path))
    # The writer's pid in the name lets a later write recognise a temp file left by a kill.
    name = f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    tmp = os.path.join(directory, name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as err:
        raise _write_error(err, path, tmp) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.remove(tmp)
        except OSError:
            pass  # already gone (replaced), or a later write removes it (_remove_stale_temps)
        if isinstance(err, OSError) and err.filename in (None, tmp):  # not the caller's own
            raise _write_error(err, path, tmp) from None
        raise
    _fsync_directory(directory)


def _write_error(err: OSError, path: str, tmp: str) -> OSError:
    """``err`` as the user sees it: about ``path`` (the temporary file is ours, not theirs)."""
    if err.errno is None:  # no errno: keep the text, with the user's path for the temp's
        return OSError(f"cannot write {path!r}: {str(err).replace(tmp, path)}")
    reason = err.strerror or os.strerror(err.errno)
    directory = os.path.dirname(path) or "."
    if not os.path.exists(directory):
        reason += f" (the directory {directory!r} does not exist)"
    elif not os.path.isdir(directory):
        reason += f" ({directory!r} is a file, not a directory)"
    elif err.errno in (errno.EACCES, errno.EPERM):
        reason += f" (no permission to create a file in {directory!r})"
    return OSError(err.errno, f"cannot write {path!r}: {reason}")  # its subclass, by errno


def _remove_stale_temps(directory: str, base: str) -> None:
    """Remove temporary files of ``base`` whose writer no longer runs (killed mid-write).

    A SIGKILL cannot be caught, so its temporary file stays behind; the next write of the same
    path removes it. Files of a live process (a concurrent writer) are left alone.
    """
    prefix = f".{base}."
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass  # another writer removed it first


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows, signal 0 would be CTRL_C_EVENT
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its file
    return True


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (POSIX only: Windows cannot open a directory)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_tensors(tensors: Any) -> Mapping[str, Any]:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a dict of name -> array. Received: {type(tensors)}.")
    for name in tensors:
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(
                f"tensor names must be non-empty strings other than '__metadata__'. "
                f"Received: {name!r}."
            )
    return tensors


def _as_le_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a C-contiguous little-endian array of a supported dtype."""
    a = np.asarray(value)
    key = (a.dtype.kind, a.dtype.itemsize)
    if key not in _NAMES:
        raise TypeError(
            f"tensor {name!r}: dtype {a.dtype} cannot be stored in safetensors. "
            f"Supported: {', '.join(str(d) for d in DTYPES.values())}."
        )
    return np.asarray(a, dtype=DTYPES[_NAMES[key]], order="C")  # keeps 0-d arrays 0-d


def _check_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TypeError(f"metadata must be a dict of str -> str. Received: {metadata!r:.200}.")
    return dict(metadata)


# --- reading --------------------------------------------------------------------------------


def read_safetensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file: ``(tensors, metadata)``; FormatError on anything malformed.

    The arrays are little-endian views of one buffer read from the file (copied only when a
    tensor is misaligned); ``metadata`` is ``{}`` when the file has none.
    """
    where = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise FormatError(f"{where}: not a safetensors file: {size} bytes, fewer than 8.")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER_BYTES:
            what = identify(path)  # another format's first bytes read as a length are absurd
            if what is not None:
                raise FormatError(f"{where}: not a safetensors file: it is {what}")
            raise FormatError(f"{where}: header length {n} exceeds {MAX_HEADER_BYTES} bytes.")
        if n > size - 8:
            raise FormatError(
                f"{where}: header length {n} runs past the end of the file ({size} bytes); "
                "the file is truncated or not a safetensors file."
            )
        header = _parse_header(where, _read_exactly(f, n, where))
        entries, metadata = _check_header(where, header, size - 8 - n)
        data = bytearray(size - 8 - n)
        if f.readinto(data) != len(data):
            raise FormatError(f"{where}: the file is truncated (shorter than its header says).")
    return {name: _view(where, name, data, *entry) for name, entry in entries.items()}, metadata


def _read_exactly(f, n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise FormatError(f"{where}: the file is truncated (shorter than its header says).")
    return data


def _parse_header(where: str, raw: bytes) -> dict[str, Any]:
    """The JSON header as a dict; duplicated keys are an error, not silently the last one."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise FormatError(f"{where}: duplicated names in the header: {dup!r:.200}.")
        return dict(pairs)

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except FormatError:
        raise
    except (ValueError, RecursionError) as err:  # bad UTF-8, bad JSON, absurd nesting
        raise FormatError(f"{where}: the header is not valid UTF-8 JSON: {err}.") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: the header must be a JSON object. Received: {raw[:80]!r}.")
    return header


def _check_header(where: str, header: dict, data_len: int) -> tuple[dict, dict[str, str]]:
    """Validate every entry against the data section's length; ``(entries, metadata)``."""
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError(
            f"{where}: __metadata__ must map str -> str. Received: {metadata!r:.200}."
        )
    entries = {name: _check_entry(where, name, info, data_len) for name, info in header.items()}
    end = 0
    for name, (_, _, begin, stop) in sorted(entries.items(), key=lambda e: e[1][2:]):
        if begin != end:
            what = "overlaps the tensor before it" if begin < end else "leaves a gap before it"
            raise FormatError(f"{where}: tensor {name!r}: byte range [{begin}, {stop}] {what}.")
        end = stop
    if end != data_len:
        raise FormatError(
            f"{where}: the tensors cover {end} bytes of a {data_len}-byte data section "
            "(trailing bytes: the file is corrupt)."
        )
    return entries, metadata


def _check_entry(where: str, name: str, info: Any, data_len: int) -> tuple:
    """``(dtype, shape, begin, end)`` of one header entry; FormatError naming what is wrong."""
    fail = f"{where}: tensor {name!r}:"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise FormatError(
            f"{fail} expected exactly the keys dtype, shape, data_offsets. Received: {info!r:.200}."
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise FormatError(
            f"{fail} unknown or unsupported dtype {dtype!r:.50}. Supported: {', '.join(DTYPES)}."
        )
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(map(_is_count, shape)):
        raise FormatError(
            f"{fail} shape must be a list of at most {MAX_NDIM} non-negative ints. "
            f"Received: {shape!r:.200}."
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise FormatError(
            f"{fail} data_offsets must be [begin, end] of non-negative ints. "
            f"Received: {offsets!r:.200}."
        )
    begin, end = offsets
    if begin > end or end > data_len:
        raise FormatError(
            f"{fail} byte range [{begin}, {end}] is not inside the {data_len}-byte data section."
        )
    nbytes = math.prod(shape) * DTYPES[dtype].itemsize  # Python ints: no overflow
    if nbytes != end - begin:
        raise FormatError(
            f"{fail} shape {shape} of {dtype} needs {nbytes} bytes but its byte range "
            f"[{begin}, {end}] holds {end - begin}."
        )
    return DTYPES[dtype], tuple(shape), begin, end


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _view(where: str, name: str, data: bytearray, dtype, shape, begin, end) -> np.ndarray:
    """The tensor's bytes as an array (a view of ``data`` unless misaligned)."""
    if begin == end:
        return np.empty(shape, dtype)
    a = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin)
    if dtype == np.bool_ and a.view(np.uint8).max() > 1:
        raise FormatError(f"{where}: tensor {name!r}: BOOL data holds bytes other than 0 and 1.")
    return (a if a.flags.aligned else a.copy()).reshape(shape)
