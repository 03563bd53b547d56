"""Hostile model files, by property: structured mutations of valid files (header entries,
metadata, the architecture's configs), spliced and random bytes. Whatever the file, ``load``
either succeeds or raises FormatError, and memory stays within io's documented bound.

tests/test_io.py holds the hand-written cases and byte flips; this file adds 2,100
generated cases that reach past the byte-level checks into the architecture and the weights.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deltanet
from deltanet import io
from deltanet.binary import PackedDense
from deltanet.binary.layers import QConv1D
from deltanet.io import FormatError, load_checkpoint, save
from deltanet.layers import (
    AvgPool1D,
    BatchNorm1D,
    Conv1D,
    ConvTranspose1D,
    Dense,
    Dropout,
    Flatten,
    MaxPool1D,
    ReLU,
    Reshape,
    Sequential,
    Softmax,
)

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def small_model() -> Sequential:
    """One of most layer kinds, small, with batch-norm buffers, a nested Sequential, a
    quantized layer and a packed one (uint64 buffers)."""
    return Sequential(
        Conv1D(2, 3, 3, padding=1, rng=0),
        BatchNorm1D(3),
        ReLU(),
        MaxPool1D(2),
        Sequential(ConvTranspose1D(3, 2, 2, stride=2, rng=1), AvgPool1D(2)),
        QConv1D(2, 2, 1, scaling="layer", rng=3),
        Flatten(),
        Dropout(0.1),
        Dense(4, 4, rng=2),
        PackedDense(4, 4),  # uint64 buffers
        Reshape((2, 2)),
        Softmax(),
    )


class _Opt:
    def state_dict(self):
        return {"step": np.array(2, np.int64), "state.0.m": np.zeros((3, 2, 3), np.float32)}

    def get_config(self):
        return {"name": "adam", "lr": 0.001}


@functools.cache
def valid_parts() -> tuple[bytes, dict, bytes]:
    """``(file bytes, parsed header, data section)`` of a valid checkpoint."""
    model = small_model()
    model(np.random.default_rng(0).standard_normal((4, 2, 4)).astype(np.float32))
    path = Path(tempfile.gettempdir()) / f"deltanet-hostile-{os.getpid()}.safetensors"
    save(model, path, optimizer=_Opt(), metadata={"epoch": 1, "history": {"loss": [1.0]}})
    raw = path.read_bytes()
    path.unlink()
    (n,) = struct.unpack("<Q", raw[:8])
    return raw, json.loads(raw[8 : 8 + n]), raw[8 + n :]


def pack(header: dict, data: bytes) -> bytes:
    """A file with a correct header length, so the mutation reaches the deeper checks."""
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + data


@pytest.fixture(scope="module")
def address_space_limit():
    """While the module runs, an allocation of gigabytes fails (MemoryError) instead of
    happening: the soft RLIMIT_AS is set 2 GiB above the address space in use, then restored."""
    try:
        import resource
    except ImportError:  # Windows: tracemalloc's checks remain
        resource = None
    if resource is None or not os.path.exists("/proc/self/statm"):  # not Linux
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = used + 2 * 2**30
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def loader(tmp_path_factory, address_space_limit):
    """``check(raw)``: load ``raw`` from a file; success or FormatError, memory bounded.

    Every fourth case runs under tracemalloc (which slows loading 7-fold) and checks io's
    documented bound; every case checks that no MemoryError hid behind a FormatError.
    """
    shm = Path("/dev/shm")  # in memory where there is one: thousands of small writes
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = shm / f"deltanet-hostile-{os.getpid()}.safetensors"
    else:
        path = tmp_path_factory.mktemp("hostile") / "m.safetensors"
    calls = [0]

    def check(raw: bytes) -> None:
        path.write_bytes(raw)
        calls[0] += 1
        traced = calls[0] % 4 == 0
        if traced:
            tracemalloc.start()
        try:
            load_checkpoint(path)
        except FormatError as err:
            assert str(path) in str(err)  # every message names the file
            cause = err
            while cause is not None:
                assert not isinstance(cause, MemoryError), f"{len(raw)} bytes: {err}"
                cause = cause.__cause__ or cause.__context__
        finally:
            peak = tracemalloc.get_traced_memory()[1] if traced else 0
            tracemalloc.stop()
        # io's bound: the file's bytes plus < 48 bytes per value of MIN_ELEMENT_BOUND.
        limit = 48 * io.MIN_ELEMENT_BOUND + 10 * len(raw) + 5_000_000
        assert peak < limit, f"loading {len(raw)} bytes allocated {peak} bytes"

    yield check
    path.unlink(missing_ok=True)


# Values a hostile file may put anywhere: wrong types, huge, negative, NaN, nested.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 2**64 + 1, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["F32", "I64", "U64", "BF16", "float64", "Dense", "same", "os.system"]),
)
json_values = st.one_of(  # one level of nesting: cheap to draw, still every wrong type
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)


def paths(node, prefix=()):
    """Every path into a JSON tree (lists and dicts), the root included."""
    yield prefix
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        yield from paths(value, (*prefix, key))


def replace(node, path, value):
    if not path:
        return value
    node[path[0]] = replace(node[path[0]], path[1:], value)
    return node


def mutate_tree(tree, data: st.DataObject, rounds: int):
    """Replace (or delete) the values at up to ``rounds`` random paths of ``tree``."""
    for _ in range(rounds):
        all_paths = list(paths(tree))
        path = data.draw(st.sampled_from(all_paths[1:] or all_paths))
        if path and data.draw(st.booleans()) and data.draw(st.booleans()):  # delete, 1 in 4
            parent = tree
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        else:
            tree = replace(tree, path, data.draw(json_values))
    return tree


@settings(max_examples=600, **SETTINGS)
@given(st.data())
def test_mutated_header_entries_raise_only_format_error(loader, data):
    """Tensor entries: dtype, shape, data_offsets and the metadata's keys, replaced or deleted."""
    _, header, body = valid_parts()
    header = json.loads(json.dumps(header))
    meta = header.pop("__metadata__")
    header = mutate_tree(header, data, data.draw(st.integers(1, 3)))
    if isinstance(header, dict) and data.draw(st.booleans()):
        header["__metadata__"] = meta
    loader(pack(header, body) if isinstance(header, dict) else pack({"x": header}, body))


@settings(max_examples=800, **SETTINGS)
@given(st.data())
def test_mutated_architecture_raises_only_format_error(loader, data):
    """Every value of the architecture (classes, configs, nesting) may be replaced or deleted."""
    _, header, body = valid_parts()
    header = json.loads(json.dumps(header))
    key = data.draw(st.sampled_from(["architecture", "architecture", "optimizer", "user"]))
    tree = json.loads(header["__metadata__"][key])
    tree = mutate_tree(tree, data, data.draw(st.integers(1, 3)))
    header["__metadata__"][key] = json.dumps(tree)
    loader(pack(header, body))


@settings(max_examples=350, **SETTINGS)
@given(st.integers(0, 10**6), st.integers(0, 64), st.binary(max_size=64))
def test_spliced_bytes_raise_only_format_error(loader, at, cut, insert):
    """A run of bytes cut out and others put in their place (shifts everything after)."""
    raw, _, _ = valid_parts()
    at %= len(raw)
    loader(raw[:at] + insert + raw[at + cut :])


@settings(max_examples=250, **SETTINGS)
@given(st.integers(0, 2000), st.binary(max_size=2000))
def test_random_bytes_behind_a_plausible_header_length(loader, n, rest):
    """Random bytes after a header length that fits the file: they reach the JSON parser."""
    loader(struct.pack("<Q", min(n, len(rest))) + rest)


@settings(max_examples=100, **SETTINGS)
@given(st.binary(min_size=0, max_size=1024))
def test_a_1kb_file_with_a_huge_architecture_is_refused_cheaply(loader, pad):
    """Sizes in a small file: huge layers in the architecture, tiny weights in the data."""
    header = {
        "__metadata__": {
            "architecture": json.dumps(
                {"class": "Dense", "config": {"in_features": 2**20, "out_features": 2**20}}
            )
        },
        "model.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    raw = pack(header, b"\0\0\0\0")
    assert len(raw) < 1024
    with pytest.raises(FormatError, match="out of all proportion"):
        path = Path(tempfile.gettempdir()) / f"deltanet-huge-{os.getpid()}"
        path.write_bytes(raw)
        try:
            load_checkpoint(path)
        finally:
            path.unlink()
    loader(raw[: len(raw) - 4] + pad[:4])


def test_valid_file_still_loads():
    raw, _, _ = valid_parts()
    path = Path(tempfile.gettempdir()) / f"deltanet-valid-{os.getpid()}"
    path.write_bytes(raw)
    try:
        ckpt = load_checkpoint(path)
    finally:
        path.unlink()
    assert ckpt.metadata["epoch"] == 1 and set(ckpt.optimizer_state) == {"step", "state.0.m"}


def test_numpy_loads_never_allow_pickle():
    """Every ``np.load`` call in the package passes ``allow_pickle=False``; no pickle import."""
    root = Path(deltanet.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "cPickle", "dill", "shelve"} & set(names), path
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load":
                base = getattr(node.func.value, "id", "")
                if base in ("np", "numpy"):
                    kw = {k.arg: k.value for k in node.keywords}
                    assert "allow_pickle" in kw, f"{path}:{node.lineno}: np.load without it"
                    assert getattr(kw["allow_pickle"], "value", True) is False, path


@pytest.mark.parametrize("depth", [50, 330, 340, 2000])
def test_deeply_nested_sequentials_load_or_raise_format_error(loader, depth):
    """JSON nesting near Python's recursion limit: the parser or the builder may refuse it
    (FormatError), and nothing else (RecursionError) may escape."""
    inner = '{"class": "ReLU", "config": {}}'
    arch = '{"class": "Sequential", "config": {"layers": [' * depth + inner + "]}}" * depth
    loader(pack({"__metadata__": {"architecture": arch}}, b""))
