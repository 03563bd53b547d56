"""Messages a user can act on: file errors name the user's file, never an internal temporary
file, and a file of another kind is named as such, with what to use instead.

API cases run in-process; CLI cases and real faults (a read-only directory, a file-size limit)
run in a subprocess under the harness's memory cap. Each case has its own temporary directory,
and ``snapshot`` proves that nothing was written or overwritten.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.binary import QConv2D, QDense, pack
from deltanet.io import FormatError, atomic_write, save_torch_weights, write_safetensors
from deltanet.io import safetensors as sf
from deltanet.layers import BatchNorm2D, Conv2D, Dense, Flatten, ReLU, Sequential
from tests.faults.harness import assert_clean_error, run_cli, run_python, snapshot

TEMP_NAME = re.compile(r"\.\d+\.[0-9a-f]{12}\.tmp")  # atomic_write's .NAME.PID.HEX.tmp


def _no_temp_name(text: str) -> None:
    assert not TEMP_NAME.search(text) and ".tmp" not in text, f"a temporary file named:\n{text}"


def _mlp() -> Sequential:
    return Sequential(Dense(4, 8, rng=0), ReLU(), Dense(8, 3, rng=1))


def _saved_mlp(directory: Path) -> Path:
    path = directory / "m.safetensors"
    dn.save(_mlp(), path, metadata={"run": {"input_shape": [4]}})
    return path


# --- atomic_write: the user's path, never the temporary file -------------------------------------


def test_write_into_a_missing_directory_names_the_users_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        dn.save(_mlp(), tmp_path / "nodir" / "m.safetensors")
    msg = str(info.value)
    assert f"cannot write {str(tmp_path / 'nodir' / 'm.safetensors')!r}" in msg
    assert "does not exist" in msg and info.value.errno == errno.ENOENT
    _no_temp_name(msg)
    assert list(tmp_path.iterdir()) == []


def test_write_below_a_file_says_it_is_not_a_directory(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    before = snapshot(tmp_path)
    with pytest.raises(NotADirectoryError) as info:
        dn.export_onnx(_mlp(), tmp_path / "plain" / "m.onnx", (4,))
    assert "is a file, not a directory" in str(info.value)
    _no_temp_name(str(info.value))
    assert snapshot(tmp_path) == before


def test_write_over_a_directory_names_it_and_leaves_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_bytes(b"mine")
    before = snapshot(tmp_path)
    with pytest.raises(IsADirectoryError) as info:
        dn.save(_mlp(), tmp_path / "out")
    assert f"cannot write {str(tmp_path / 'out')!r}: Is a directory" in str(info.value)
    _no_temp_name(str(info.value))
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("at", ["write", "fsync", "replace"])
def test_disk_full_names_the_users_path_and_keeps_the_old_file(tmp_path, monkeypatch, at):
    path = tmp_path / "m.safetensors"
    dn.save(_mlp(), path)
    before = snapshot(tmp_path)

    def full(*args, **kwargs):  # as the kernel reports it: write and fsync name no file
        names = (args[0], str(path)) if at == "replace" else ()  # replace names the temp
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *names)

    if at == "write":
        with pytest.raises(OSError) as info:
            atomic_write(path, full)
    else:
        monkeypatch.setattr(sf.os, at, full)
        with pytest.raises(OSError) as info:
            dn.save(_mlp(), path)
        monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"[Errno 28] cannot write {str(path)!r}: No space left on device"
    assert snapshot(tmp_path) == before


def test_an_error_about_the_callers_own_file_is_left_alone(tmp_path):
    def write(f) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "input.bin")

    with pytest.raises(FileNotFoundError, match="input.bin"):
        atomic_write(tmp_path / "out.bin", write)
    assert list(tmp_path.iterdir()) == []


FSIZE_SNIPPET = """
    import resource, sys
    import numpy as np
    import deltanet as dn
    from deltanet.layers import Dense, Sequential
    dn.save(Sequential(Dense(2, 2, rng=0)), "m.safetensors")  # small: written before the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
    try:
        dn.save(Sequential(Dense(200, 200, rng=0)), "m.safetensors")  # 160 KB: over the limit
    except OSError as err:
        print(err)
        sys.exit(3)
"""


def test_a_real_file_size_limit_names_the_users_path(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), as a full disk does (ENOSPC)."""
    proc = run_python(FSIZE_SNIPPET, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == "[Errno 27] cannot write 'm.safetensors': File too large"
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind
    assert dn.load(tmp_path / "m.safetensors").num_parameters() == 6  # the old file, intact


def test_cli_export_under_a_file_size_limit_names_the_output(tmp_path):
    _saved_mlp(tmp_path)
    before = snapshot(tmp_path)
    code = """
        import os, resource, sys
        resource.setrlimit(resource.RLIMIT_FSIZE, (256, 256))
        argv = [sys.executable, "-m", "deltanet", "export", "m.safetensors", "--onnx", "m.onnx"]
        os.execv(sys.executable, argv)
    """
    proc = run_python(code, cwd=tmp_path)
    assert_clean_error(proc, "cannot write 'm.onnx': File too large")
    _no_temp_name(proc.stderr)
    assert snapshot(tmp_path) == before


def _run_cli_without_root_override(*args: object, cwd: Path):
    """``deltanet ARGS`` for which file permissions hold: as root, the subprocess drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding set and re-executes itself."""
    if os.geteuid() != 0:
        return run_cli(*args, cwd=cwd)
    if not sys.platform.startswith("linux"):
        pytest.skip("running as root: read-only directories are writable")
    code = f"""
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                sys.exit(77)
        os.execv(sys.executable, [sys.executable, "-m", "deltanet", *{[str(a) for a in args]!r}])
    """
    proc = run_python(textwrap.dedent(code), cwd=cwd)
    if proc.returncode == 77:
        pytest.skip("running as root without CAP_SETPCAP: cannot drop the override")
    return proc


@pytest.mark.parametrize("flag, out", [("--onnx", "m.onnx"), ("--torch", "w.safetensors")])
def test_cli_export_into_a_read_only_directory_names_the_users_path(tmp_path, flag, out):
    _saved_mlp(tmp_path)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "keep").write_bytes(b"mine")
    (tmp_path / "ro").chmod(0o555)
    before = snapshot(tmp_path)
    try:
        proc = _run_cli_without_root_override(
            "export", "m.safetensors", flag, f"ro/{out}", cwd=tmp_path
        )
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert_clean_error(proc, f"cannot write 'ro/{out}': Permission denied", "in 'ro'")
    _no_temp_name(proc.stderr)
    assert snapshot(tmp_path) == before


# --- loading a file that is not a deltanet model -------------------------------------------------


def _onnx_file(path: Path) -> Path:
    pytest.importorskip("onnx")
    dn.export_onnx(_mlp(), path, (4,))
    return path


def _torch_zip(path: Path) -> Path:
    """What torch.save writes (a zip with ``<name>/data.pkl``), made without torch."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
        archive.writestr("model/version", "3\n")
    return path


def _pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": {"w": [1.0]}}, protocol=4))
    return path


def _npy(path: Path) -> Path:
    np.save(path, np.zeros((2, 3), np.float32))
    return path


def _npz(path: Path) -> Path:
    np.savez(path, x=np.zeros((2, 4)), y=np.zeros(2))
    return path


def _torch_state_dict(path: Path) -> Path:
    write_safetensors(path, {"fc.weight": np.zeros((3, 4), np.float32), "fc.bias": np.zeros(3)})
    return path


def _hdf5(path: Path) -> Path:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(504))  # the HDF5 signature, then a superblock
    return path


def _keras_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def _json(path: Path) -> Path:
    path.write_text('{"input_shape": [4], "epochs": 3}\n')
    return path


FOREIGN = {
    "model.onnx": (_onnx_file, "it is an ONNX model", "does not read it"),
    "renamed-onnx.safetensors": (_onnx_file, "it is an ONNX model", "load_torch_weights"),
    "ckpt.pt": (_torch_zip, "a PyTorch checkpoint", "safetensors.torch.save_file"),
    "legacy.pth": (_pickle, "a Python pickle", "load_torch_weights"),
    "x.npy": (_npy, "a NumPy array (.npy)", "numpy.load(path, allow_pickle=False)"),
    "data.npz": (_npz, "a NumPy archive (.npz)", "--data FILE.npz"),
    "torch.safetensors": (_torch_state_dict, "a PyTorch state dict", "load_torch_weights"),
    "run.json": (_json, "a JSON text file", "deltanet.save"),
    "model.h5": (_hdf5, "an HDF5 file", "deltanet.save"),
    "model.keras": (_keras_zip, "a zip archive", "deltanet.save"),
}


@pytest.mark.parametrize("name", list(FOREIGN))
def test_load_says_what_the_file_is_and_what_to_use(tmp_path, name):
    make, what, instead = FOREIGN[name]
    path = make(tmp_path / name)
    before = snapshot(tmp_path)
    with pytest.raises(FormatError) as info:
        dn.load(path)
    msg = " ".join(str(info.value).split())
    assert msg.startswith(str(path)) and what in msg and instead in msg, msg
    assert "torch.load" not in msg and "pickle.load" not in msg  # never advise unpickling
    assert snapshot(tmp_path) == before


def test_load_of_a_real_torch_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(4, 3).state_dict(), tmp_path / "net.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(FormatError, match="a PyTorch checkpoint .*never unpickles"):
        dn.load(tmp_path / "net.pt")
    with pytest.raises(FormatError, match="a Python pickle .*never unpickles"):
        dn.load(tmp_path / "old.pt")


def test_a_deltanet_model_named_onnx_still_loads(tmp_path):
    """The name is only looked at once the content has failed as safetensors."""
    dn.save(_mlp(), tmp_path / "odd.onnx")
    assert dn.load(tmp_path / "odd.onnx").num_parameters() == _mlp().num_parameters()


def test_load_torch_weights_of_an_onnx_file_says_so(tmp_path):
    path = _onnx_file(tmp_path / "m.onnx")
    with pytest.raises(FormatError, match="it is an ONNX model"):
        dn.load_torch_weights(_mlp(), path)


def test_cli_evaluate_of_an_onnx_file_says_it_is_onnx(tmp_path):
    _onnx_file(tmp_path / "some.onnx")
    before = snapshot(tmp_path)
    proc = run_cli("evaluate", "some.onnx", cwd=tmp_path)
    assert_clean_error(proc, "some.onnx: not a safetensors file: it is an ONNX model")
    assert snapshot(tmp_path) == before


def test_cli_predict_with_a_torch_checkpoint_points_to_load_torch_weights(tmp_path):
    _torch_zip(tmp_path / "ckpt.pt")
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    before = snapshot(tmp_path)
    proc = run_cli("predict", "ckpt.pt", "x.npy", cwd=tmp_path)
    assert_clean_error(proc, "ckpt.pt", "a PyTorch checkpoint", "load_torch_weights")
    assert "torch.load" not in proc.stderr
    assert snapshot(tmp_path) == before


# --- PyTorch export of a packed model ------------------------------------------------------------


def _packed() -> Sequential:
    model = Sequential(
        Conv2D(1, 4, 3, padding=1, rng=0), BatchNorm2D(4), QConv2D(4, 4, 3, bias=False, rng=1),
        BatchNorm2D(4), Flatten(), QDense(144, 3, rng=2),
    )  # fmt: skip
    return pack(model.eval())


def test_save_torch_weights_refuses_a_packed_model(tmp_path):
    with pytest.raises(ValueError) as info:
        save_torch_weights(_packed(), tmp_path / "w.safetensors")
    msg = str(info.value)
    assert "layer 2 (PackedConv) is bit-packed (one of 2)" in msg
    assert "'weight_bits', 'scale', 'shift', tensors no PyTorch module has" in msg
    assert "Export the unpacked model" in msg
    assert list(tmp_path.iterdir()) == []


def test_load_torch_weights_refuses_a_packed_model(tmp_path):
    save_torch_weights(_mlp(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="Load the weights into the unpacked model"):
        dn.load_torch_weights(_packed(), tmp_path / "w.safetensors")


def test_cli_export_torch_of_a_packed_model_writes_nothing(tmp_path):
    dn.save(_packed(), tmp_path / "packed.safetensors")
    before = snapshot(tmp_path)
    proc = run_cli("export", "packed.safetensors", "--torch", "w.safetensors", cwd=tmp_path)
    assert_clean_error(proc, "is bit-packed", "no PyTorch module has", "unpacked model")
    assert snapshot(tmp_path) == before


def test_cli_export_onnx_and_torch_of_a_packed_model_writes_neither(tmp_path):
    """The state dict is refused before the ONNX file (which alone would be fine) is written."""
    pytest.importorskip("onnx")
    dn.save(_packed(), tmp_path / "packed.safetensors")
    before = snapshot(tmp_path)
    proc = run_cli(
        "export", "packed.safetensors", "--onnx", "p.onnx", "--torch", "w.safetensors",
        "--input-shape", "1,8,8", cwd=tmp_path,
    )  # fmt: skip
    assert_clean_error(proc, "is bit-packed")
    assert snapshot(tmp_path) == before


# --- shapes as the user gave them ----------------------------------------------------------------


def test_export_onnx_with_a_wrong_input_shape_shows_the_shape_given(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError) as info:
        dn.export_onnx(_mlp(), tmp_path / "m.onnx", (5,))
    msg = str(info.value)
    assert msg.startswith("export_onnx: tracing input_shape (5,) (one example; traced as a ")
    assert "batch of one, (1, 5)) failed: Dense(in_features=4)" in msg
    assert list(tmp_path.iterdir()) == []
