"""Model files: save/load round trips, checkpoints, atomic writes, and hostile files."""

from __future__ import annotations

import functools
import json
import math
import os
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltanet import io
from deltanet.io import Checkpoint, FormatError, load, load_checkpoint, save
from deltanet.io.safetensors import read_safetensors, write_safetensors
from deltanet.layers import BatchNorm2D, Conv2D, Dense, Flatten, ReLU, Sequential
from deltanet.layers.registry import layer_to_dict

X = np.random.default_rng(0).standard_normal((4, 1, 6, 6))


def make_model(dtype=np.float32) -> Sequential:
    """Conv, batch norm and dense, after one training step's forward (buffers moved)."""
    model = Sequential(
        Conv2D(1, 2, 3, rng=0, dtype=dtype),
        BatchNorm2D(2, dtype=dtype),
        ReLU(),
        Flatten(),
        Dense(32, 3, rng=1, dtype=dtype),
    )
    model(X.astype(dtype))
    return model


class FakeOptimizer:
    """The two methods ``save`` uses, with fixed state."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"step": np.array(3, np.int64), "state.0.exp_avg": np.arange(4.0).reshape(2, 2)}

    def get_config(self) -> dict:
        return {"name": "fake", "lr": 0.1, "betas": [0.9, 0.999]}


def assert_same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert np.asarray(b[name]).dtype == np.asarray(a[name]).dtype, name
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_keeps_weights_buffers_dtypes_and_outputs(tmp_path, dtype):
    model = make_model(dtype)
    save(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert layer_to_dict(loaded) == layer_to_dict(model)
    assert_same_state(model.state_dict(), loaded.state_dict())
    assert loaded.state_dict()["1.num_batches_tracked"].dtype == np.int64
    x = X.astype(dtype)
    y = loaded.eval()(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, model.eval()(x))


def test_file_layout(tmp_path):
    from deltanet._version import __version__

    save(make_model(), tmp_path / "m.safetensors", optimizer=FakeOptimizer(), metadata={"a": 1})
    tensors, meta = read_safetensors(tmp_path / "m.safetensors")
    assert set(meta) == {"deltanet_version", "architecture", "optimizer", "user"}
    assert json.loads(meta["deltanet_version"]) == __version__
    assert json.loads(meta["user"]) == {"a": 1}
    assert "model.0.weight" in tensors and "optim.state.0.exp_avg" in tensors


def test_checkpoint_with_optimizer_state_and_metadata(tmp_path):
    rng = np.random.default_rng(5)
    rng.random(3)
    metadata = {
        "epoch": 3,
        "step": 120,
        "rng": rng.bit_generator.state,  # 128-bit integers survive JSON
        "history": {"loss": [np.float32(0.5), float("nan")], "lr": np.array([0.1, 0.01])},
    }
    model, opt = make_model(), FakeOptimizer()
    save(model, tmp_path / "c.safetensors", optimizer=opt, metadata=metadata)
    ckpt = load_checkpoint(tmp_path / "c.safetensors")
    assert isinstance(ckpt, Checkpoint)
    assert_same_state(model.state_dict(), ckpt.model.state_dict())
    assert_same_state(opt.state_dict(), ckpt.optimizer_state)
    assert ckpt.optimizer_config == opt.get_config()
    assert ckpt.metadata["epoch"] == 3 and ckpt.metadata["step"] == 120
    assert ckpt.metadata["history"]["lr"] == [0.1, 0.01]
    assert ckpt.metadata["history"]["loss"][0] == 0.5
    assert math.isnan(ckpt.metadata["history"]["loss"][1])
    resumed = np.random.default_rng()
    resumed.bit_generator.state = ckpt.metadata["rng"]
    np.testing.assert_array_equal(resumed.random(4), rng.random(4))


def test_checkpoint_without_optimizer_or_metadata(tmp_path):
    save(make_model(), tmp_path / "m.safetensors")
    ckpt = load_checkpoint(tmp_path / "m.safetensors")
    assert ckpt.optimizer_state is None and ckpt.optimizer_config is None
    assert ckpt.metadata == {}


def test_adam_state_resumes_exactly(tmp_path):
    optim = pytest.importorskip("deltanet.optim")
    model = make_model()
    grads = [
        np.random.default_rng(i).standard_normal(p.shape) for i, p in enumerate(model.parameters())
    ]

    def step(m, opt):
        for p, g in zip(m.parameters(), grads):
            p.grad[...] = g
        opt.step()

    opt = optim.Adam(model, lr=0.01)
    step(model, opt)
    save(model, tmp_path / "c.safetensors", optimizer=opt)
    ckpt = load_checkpoint(tmp_path / "c.safetensors")
    config = dict(ckpt.optimizer_config)
    opt2 = optim.make_optimizer(config.pop("name"), ckpt.model, **config)
    opt2.load_state_dict(ckpt.optimizer_state)
    step(model, opt)
    step(ckpt.model, opt2)
    assert_same_state(model.state_dict(), ckpt.model.state_dict())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model": "not a layer"}, "must be a deltanet Layer"),
        ({"optimizer": object()}, "state_dict\\(\\) and get_config\\(\\)"),
        ({"metadata": {"f": object()}}, "metadata must be JSON-able"),
        ({"metadata": {1: "a"}}, "str keys"),
        ({"metadata": [1]}, "str keys"),
    ],
)
def test_save_rejects_bad_arguments(tmp_path, kwargs, match):
    kwargs = {"model": make_model(), **kwargs}
    with pytest.raises(TypeError, match=match):
        save(kwargs.pop("model"), tmp_path / "m.safetensors", **kwargs)
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save(make_model(), path)
    before = path.read_bytes()

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save(make_model(np.float64), path, metadata={"epoch": 9})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]


# --- hostile and corrupt model files ----------------------------------------------------------


def arch_edit(edit):
    """A tamper step that edits the decoded architecture and stores it back."""

    def apply(tensors, meta):
        arch = json.loads(meta["architecture"])
        edit(arch["config"]["layers"])
        meta["architecture"] = json.dumps(arch)

    return apply


def setitem(d, key, value):
    d[key] = value


def conf(i, key, value):
    return arch_edit(lambda layers: setitem(layers[i]["config"], key, value))


def dense_bombs(layers):
    layers[:] = [{"class": "Dense", "config": {"in_features": 1000, "out_features": 1000}}] * 100


TAMPER = {
    "no architecture": (lambda t, m: m.pop("architecture"), "not a deltanet model file"),
    "architecture not JSON": (lambda t, m: setitem(m, "architecture", "{"), "not valid JSON"),
    "deep nesting": (lambda t, m: setitem(m, "architecture", "[" * 10**5), "not valid JSON"),
    "not a layer": (lambda t, m: setitem(m, "architecture", "[1, 2]"), "invalid architecture"),
    "unknown layer type": (
        arch_edit(lambda layers: setitem(layers[2], "class", "os.system")),
        "unknown layer type 'os.system'",
    ),
    "config with wrong types": (conf(4, "in_features", "32"), "invalid architecture"),
    "unknown config key": (conf(0, "evil", 1), "invalid architecture"),
    "bad dtype name": (conf(1, "dtype", "float33"), "invalid architecture"),
    "bad momentum": (conf(1, "momentum", "fast"), "invalid architecture"),
    "shape disagrees": (
        conf(4, "out_features", 4),
        "'model.4.weight'.*expects float32 \\(4, 32\\)",
    ),
    "dtype disagrees": (conf(0, "dtype", "float64"), "'model.0.weight'.*expects float64"),
    "weights retyped": (
        lambda t, m: setitem(t, "model.4.bias", t["model.4.bias"].astype(np.float64)),
        "'model.4.bias'.*expects float32 \\(3,\\). Received: float64",
    ),
    "missing tensor": (lambda t, m: t.pop("model.1.running_var"), "Missing: \\['model.1.running"),
    "extra tensor": (lambda t, m: setitem(t, "model.9.weight", np.ones(2)), "Unexpected: .*9.w"),
    "foreign tensor": (lambda t, m: setitem(t, "evil", np.ones(2)), "unexpected tensor 'evil'"),
    "optimizer tensors alone": (
        lambda t, m: (setitem(t, "optim.step", np.array(1)), m.pop("optimizer")),
        "without an 'optimizer' config",
    ),
    "optimizer config a list": (lambda t, m: setitem(m, "optimizer", "[1]"), "JSON object"),
    "user metadata a number": (lambda t, m: setitem(m, "user", "3"), "'user' must be a JSON"),
    "user metadata not JSON": (lambda t, m: setitem(m, "user", "{"), "'user' is not valid JSON"),
    "huge dense layer": (conf(4, "in_features", 10**6), "out of all proportion"),
    "huge float size": (conf(4, "out_features", 1e300), "out of all proportion"),
    "infinite size": (conf(0, "out_channels", 1e999), "out of all proportion"),
    "many big layers": (arch_edit(dense_bombs), "out of all proportion"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampered_model_files_raise_format_error(tmp_path, case):
    edit, match = TAMPER[case]
    save(make_model(), tmp_path / "good.safetensors", optimizer=FakeOptimizer())
    tensors, meta = read_safetensors(tmp_path / "good.safetensors")
    tensors, meta = dict(tensors), dict(meta)
    edit(tensors, meta)
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, tensors, meta)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=match) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 20_000_000, f"loading a {path.stat().st_size}-byte file allocated {peak} bytes"


def test_architecture_just_under_the_bound_stays_within_48_bytes_per_value(tmp_path):
    side = math.isqrt(io.MIN_ELEMENT_BOUND)  # Dense(side, side): side**2 counted values
    save(make_model(np.float64), tmp_path / "good.safetensors")
    tensors, meta = read_safetensors(tmp_path / "good.safetensors")
    meta = dict(meta)
    conf(4, "in_features", side)(tensors, meta)
    conf(4, "out_features", side)(tensors, meta)
    write_safetensors(tmp_path / "bad.safetensors", tensors, meta)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="expects float64"):
            load(tmp_path / "bad.safetensors")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert side**2 * 16 < peak < 48 * io.MIN_ELEMENT_BOUND


def test_duplicated_tensor_names_raise_format_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save(make_model(), path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + n].rstrip(b" ")
    start = header.index(b'"model.0.bias"')
    item = header[start : header.index(b"]}", start) + 2]
    header = header.replace(item, item + b"," + item)
    path.write_bytes(struct.pack("<Q", len(header)) + header + raw[8 + n :])
    with pytest.raises(FormatError, match="duplicated names.*model.0.bias"):
        load(path)


def test_plain_safetensors_file_is_not_a_model(tmp_path):
    write_safetensors(tmp_path / "w.safetensors", {"model.0.weight": np.ones(3)})
    with pytest.raises(FormatError, match="not a deltanet model file"):
        load(tmp_path / "w.safetensors")


def test_format_error_is_a_value_error():
    assert issubclass(FormatError, ValueError) and io.FormatError is FormatError


# --- property tests: nothing but FormatError escapes -------------------------------------------


@functools.cache
def valid_file_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        save(make_model(), path, optimizer=FakeOptimizer(), metadata={"epoch": 2})
        return Path(path).read_bytes()


def load_bytes_or_format_error(raw: bytes) -> None:
    """Load ``raw`` from a file: success or FormatError, within io's bound on memory."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        Path(path).write_bytes(raw)
        tracemalloc.start()
        try:
            load_checkpoint(path)
        except FormatError:
            pass
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    # A hostile architecture may build layers of up to MIN_ELEMENT_BOUND values (< 48 bytes each).
    limit = 48 * io.MIN_ELEMENT_BOUND + 10 * len(raw) + 5_000_000
    assert peak < limit, f"loading {len(raw)} bytes allocated {peak} bytes"


def test_every_truncation_raises_format_error():
    raw = valid_file_bytes()
    for end in range(0, len(raw), 7):
        with tempfile.TemporaryDirectory() as d:
            Path(d, "m").write_bytes(raw[:end])
            with pytest.raises(FormatError):
                load_checkpoint(Path(d, "m"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2**32), st.integers(0, 255)), min_size=1, max_size=6))
def test_flipped_bytes_raise_only_format_error(flips):
    raw = bytearray(valid_file_bytes())
    for position, byte in flips:
        raw[position % len(raw)] = byte
    load_bytes_or_format_error(bytes(raw))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_format_error(raw):
    load_bytes_or_format_error(raw)
