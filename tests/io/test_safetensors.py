"""The safetensors reader/writer: round trips, the reference package both ways, corrupt files."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from deltanet.io import safetensors as sf
from deltanet.io.safetensors import FormatError, read_safetensors, write_safetensors


def sample_tensors() -> dict[str, np.ndarray]:
    """One tensor of every supported dtype, plus 0-d, empty, strided and big-endian arrays."""
    rng = np.random.default_rng(0)
    out = {
        f"t_{name}": (rng.standard_normal((2, 3)) * 50).astype(dt)
        for name, dt in sf.DTYPES.items()
        if name != "BOOL"
    }
    out["t_BOOL"] = rng.standard_normal((3, 1)) > 0
    out["scalar"] = np.array(7, dtype=np.int64)
    out["empty"] = np.zeros((0, 4), np.float32)
    out["strided"] = np.arange(24.0).reshape(4, 6)[::2, ::3]
    out["big_endian"] = np.arange(5, dtype=">f4")
    return out


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert b[name].shape == a[name].shape, name
        assert b[name].dtype == a[name].dtype.newbyteorder("="), name
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)


def raw_file(path, header, data: bytes = b"", n: int | None = None) -> str:
    """Write a file with an arbitrary header (a dict, or bytes as is) and data section."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob) if n is None else n) + blob + data)
    return str(path)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


# --- round trips -----------------------------------------------------------------------------


def test_round_trip_every_dtype(tmp_path):
    tensors = sample_tensors()
    write_safetensors(tmp_path / "t.safetensors", tensors, {"k": "v", "json": '{"a": [1]}'})
    got, meta = read_safetensors(tmp_path / "t.safetensors")
    assert_same(tensors, got)
    assert meta == {"k": "v", "json": '{"a": [1]}'}
    assert all(a.flags.aligned for a in got.values())


def test_header_is_padded_json_and_data_aligned(tmp_path):
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"a": np.ones(3, np.float32), "b": np.ones(1, np.float64)})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and raw[8:9] == b"{"
    header = json.loads(raw[8 : 8 + n])
    assert "__metadata__" not in header  # written only when there is metadata
    assert header["b"]["data_offsets"] == [0, 8]  # wider dtypes first keeps alignment
    assert len(raw) == 8 + n + 20


def test_empty_file_round_trip(tmp_path):
    write_safetensors(tmp_path / "e.safetensors", {})
    assert read_safetensors(tmp_path / "e.safetensors") == ({}, {})


@pytest.mark.parametrize(
    "tensors, metadata, error, match",
    [
        ({"a": np.array(["x"])}, None, TypeError, "cannot be stored"),
        ({"a": np.ones(2, np.complex128)}, None, TypeError, "cannot be stored"),
        ({"a": np.array([object()])}, None, TypeError, "cannot be stored"),
        ({"__metadata__": np.ones(2)}, None, ValueError, "tensor names"),
        ({"": np.ones(2)}, None, ValueError, "tensor names"),
        ({1: np.ones(2)}, None, ValueError, "tensor names"),
        ([np.ones(2)], None, TypeError, "dict of name"),
        ({"a": np.ones(2)}, {"k": 1}, TypeError, "metadata must be a dict of str -> str"),
    ],
)
def test_write_rejects_bad_input(tmp_path, tensors, metadata, error, match):
    with pytest.raises(error, match=match):
        write_safetensors(tmp_path / "bad.safetensors", tensors, metadata)
    assert os.listdir(tmp_path) == []


# --- the reference implementation ---------------------------------------------------------------


def test_reference_package_reads_our_files(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = sample_tensors()
    write_safetensors(tmp_path / "ours.safetensors", tensors, {"k": "v"})
    assert_same(tensors, {k: st.load_file(tmp_path / "ours.safetensors")[k] for k in tensors})


def test_we_read_reference_files(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    native = {k: v.astype(v.dtype.newbyteorder("=")) for k, v in sample_tensors().items()}
    tensors = {k: np.ascontiguousarray(v) for k, v in native.items()}
    st.save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"k": "v"})
    got, meta = read_safetensors(tmp_path / "ref.safetensors")
    assert_same(tensors, {k: got[k] for k in tensors})
    assert meta == {"k": "v"}


# --- atomic writes -------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"a": np.arange(3.0)})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sf.os, fail_at, boom)
    with pytest.raises(OSError, match="disk full"):
        write_safetensors(path, {"a": np.arange(4.0)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.safetensors"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_write_interrupted_midway_leaves_old_file(tmp_path, error):
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"half of a new file")
        raise error("midway")

    with pytest.raises(error, match="midway"):
        sf.atomic_write(path, write)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["t.safetensors"]


def test_atomic_write_replaces_existing_file(tmp_path):
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"a": np.arange(3.0)})
    write_safetensors(path, {"b": np.arange(2, dtype=np.int32)})
    assert list(read_safetensors(path)[0]) == ["b"]
    assert os.listdir(tmp_path) == ["t.safetensors"]


# --- corrupt files ---------------------------------------------------------------------------


def good_file(path) -> str:
    write_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"k": "v"})
    return str(path)


def truncated(at):
    def make(path):
        raw = Path(good_file(path)).read_bytes()
        Path(path).write_bytes(raw[: at if at >= 0 else len(raw) + at])
        return str(path)

    return make


F32 = np.zeros(2, np.float32).tobytes()
CORRUPT = {
    "empty": (truncated(0), "fewer than 8"),
    "cut in the length": (truncated(5), "fewer than 8"),
    "cut after the length": (truncated(8), "past the end"),
    "cut in the header": (truncated(30), "past the end"),
    "cut in the data": (truncated(-5), "not inside"),
    "one byte short": (truncated(-1), "not inside"),
    "length past EOF": (lambda p: raw_file(p, {"w": entry()}, F32, n=10**6), "past the end"),
    "absurd length": (lambda p: raw_file(p, {}, b"", n=2**63), "exceeds 100000000"),
    "invalid JSON": (lambda p: raw_file(p, b'{"w": {', F32), "not valid UTF-8 JSON"),
    "invalid UTF-8": (lambda p: raw_file(p, b'{"\xff": 1}', F32), "not valid UTF-8 JSON"),
    "deep nesting": (lambda p: raw_file(p, b"[" * 100_000, b""), "not valid UTF-8 JSON"),
    "not an object": (lambda p: raw_file(p, [1, 2], b""), "must be a JSON object"),
    "unknown dtype": (lambda p: raw_file(p, {"w": entry("F128")}, F32), "unknown or unsupported"),
    "bfloat16": (lambda p: raw_file(p, {"w": entry("BF16", (4,))}, F32), "unsupported dtype"),
    "missing key": (lambda p: raw_file(p, {"w": {"dtype": "F32", "shape": [2]}}, F32), "keys"),
    "extra key": (lambda p: raw_file(p, {"w": {**entry(), "x": 1}}, F32), "exactly the keys"),
    "entry not a dict": (lambda p: raw_file(p, {"w": [1]}, F32), "exactly the keys"),
    "negative dim": (lambda p: raw_file(p, {"w": entry(shape=(-2,))}, F32), "shape must be"),
    "float dim": (lambda p: raw_file(p, {"w": entry(shape=(2.0,))}, F32), "shape must be"),
    "bool dim": (lambda p: raw_file(p, {"w": entry(shape=(True, 2))}, F32), "shape must be"),
    "shape not a list": (lambda p: raw_file(p, {"w": {**entry(), "shape": 2}}, F32), "shape"),
    "65 dims": (
        lambda p: raw_file(p, {"w": entry(shape=(1,) * 65, offsets=(0, 4))}, F32[:4]),
        "at most 64",
    ),
    "one offset": (lambda p: raw_file(p, {"w": entry(offsets=(0,))}, F32), "data_offsets"),
    "negative offset": (lambda p: raw_file(p, {"w": entry(offsets=(-8, 0))}, F32), "offsets"),
    "begin after end": (lambda p: raw_file(p, {"w": entry(offsets=(8, 0))}, F32), "not inside"),
    "out of range": (lambda p: raw_file(p, {"w": entry(offsets=(8, 16))}, F32), "not inside"),
    "shape/bytes mismatch": (lambda p: raw_file(p, {"w": entry(shape=(3,))}, F32), "needs 12"),
    "overlap": (
        lambda p: raw_file(p, {"a": entry(), "b": entry(shape=(1,), offsets=(4, 8))}, F32),
        "overlaps",
    ),
    "same range twice": (lambda p: raw_file(p, {"a": entry(), "b": entry()}, F32), "overlaps"),
    "gap": (lambda p: raw_file(p, {"a": entry(shape=(1,), offsets=(4, 8))}, F32), "gap"),
    "trailing bytes": (
        lambda p: raw_file(p, {"a": entry(shape=(1,), offsets=(0, 4))}, F32),
        "trailing bytes",
    ),
    "duplicated name": (lambda p: raw_file(p, b'{"w": 1, "w": 2}', b""), "duplicated names"),
    "metadata not a dict": (lambda p: raw_file(p, {"__metadata__": [1]}, b""), "__metadata__"),
    "metadata value": (lambda p: raw_file(p, {"__metadata__": {"a": 1}}, b""), "str -> str"),
    "bool bytes": (
        lambda p: raw_file(p, {"b": entry("BOOL", (2,), (0, 2))}, b"\x01\x07"),
        "BOOL data",
    ),
    "1 KB claims 10^12 values": (
        lambda p: raw_file(p, {"w": entry("F32", (10**6, 10**6), (0, 4 * 10**12))}, bytes(900)),
        "not inside",
    ),
    "10^12 values in 8 bytes": (
        lambda p: raw_file(p, {"w": entry("F64", (10**6, 10**6), (0, 8))}, bytes(8)),
        "needs 8000000000000 bytes",
    ),
    "huge dims": (
        lambda p: raw_file(p, {"w": entry("F64", (2**62,) * 64, (0, 8))}, bytes(8)),
        "needs",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_files_raise_format_error(tmp_path, case):
    make, match = CORRUPT[case]
    path = make(tmp_path / "bad.safetensors")
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=match) as info:
            read_safetensors(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)  # the message names the file
    assert peak < 2_000_000 + 4 * os.path.getsize(path), f"allocated {peak} bytes"


def test_zero_size_tensors_may_share_an_offset(tmp_path):
    header = {"a": entry(shape=(0, 3), offsets=(0, 0)), "b": entry()}
    got, _ = read_safetensors(raw_file(tmp_path / "z.safetensors", header, F32))
    assert got["a"].shape == (0, 3) and got["b"].shape == (2,)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_safetensors(tmp_path / "nope.safetensors")
