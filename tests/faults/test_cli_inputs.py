"""Bad input at the command line: PNG and .npy inputs, --input-shape, flags, Ctrl-C.

Each case makes its files in its own temporary directory and runs ``python -m deltanet`` in a
subprocess under the harness's memory cap (or calls the reader directly when nothing big can
happen): it ends in one clear line that names the file or the flag and says what was found
(shapes as they really are), no traceback, nothing written; or in the documented behaviour.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli.commands import _read_png
from deltanet.zoo import build_model
from tests.faults.harness import assert_clean_error, run_cli, run_python, snapshot
from tests.faults.test_data_bounds import npy_header


# --- files ------------------------------------------------------------------------------------
def model_file(tmp_path: Path, name: str = "digits_cnn", shape=(1, 8, 8)) -> str:
    """A zoo model saved with the run metadata that predict reads (its input shape)."""
    model = build_model(name, input_shape=shape, seed=0)
    run = {"input_shape": list(shape), "num_classes": 10, "class_names": list("0123456789")}
    dn.save(model, tmp_path / "m.safetensors", metadata={"run": run})
    return "m.safetensors"


def png(width: int, height: int, depth: int = 8, rows: bytes = b"", color: int = 0) -> bytes:
    """A PNG written by hand: signature, IHDR (any size it should claim), IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    idat = zlib.compress(rows or bytes(64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def digit(side: int = 32) -> np.ndarray:
    """A light bar on black, in [0, 1], ``(side, side)``, with a gentle ramp."""
    img = np.zeros((side, side))
    img[side // 4 : side // 2, :] = 1.0
    return img * np.linspace(0.5, 1.0, side)


def gray_png(img: np.ndarray, depth: int) -> bytes:
    top = 2**depth - 1
    dtype = ">u2" if depth == 16 else np.uint8
    values = np.round(img * top).astype(dtype)
    return png(img.shape[1], img.shape[0], depth, b"".join(b"\x00" + r.tobytes() for r in values))


def predict_fails(tmp_path: Path, name: str, *fragments: str, shape=(1, 8, 8)) -> str:
    model = model_file(tmp_path, "lenet5" if shape == (1, 28, 28) else "digits_cnn", shape)
    before = snapshot(tmp_path)
    proc = run_cli("predict", model, name, cwd=tmp_path, timeout=60)
    assert_clean_error(proc, *fragments)
    assert proc.stdout == "" and snapshot(tmp_path) == before
    assert "allow_pickle" not in proc.stderr
    return proc.stderr


# --- PNG inputs -------------------------------------------------------------------------------
def test_a_tiny_png_claiming_30000x30000_pixels_is_refused_from_its_header(tmp_path):
    (tmp_path / "big.png").write_bytes(png(30000, 30000))
    assert (tmp_path / "big.png").stat().st_size < 200
    predict_fails(tmp_path, "big.png", "big.png: a PNG image of 30000x30000 pixels",
                  "4096x4096")  # fmt: skip


def test_a_16_bit_png_reads_as_its_8_bit_twin(tmp_path):
    img = digit()
    (tmp_path / "d16.png").write_bytes(gray_png(img, 16))
    (tmp_path / "d8.png").write_bytes(gray_png(img, 8))
    x16 = _read_png(tmp_path / "d16.png", (1, 8, 8), "auto")
    x8 = _read_png(tmp_path / "d8.png", (1, 8, 8), "auto")
    assert x16.std() > 0.2  # not the blank image it once was
    np.testing.assert_allclose(x16, x8, atol=1 / 255)
    rgb16 = _read_png(tmp_path / "d16.png", (3, 8, 8), "no")
    np.testing.assert_allclose(rgb16, np.repeat(x16, 3, axis=0), atol=1e-6)
    model = model_file(tmp_path)
    out16 = run_cli("predict", model, "d16.png", cwd=tmp_path)
    out8 = run_cli("predict", model, "d8.png", cwd=tmp_path)
    assert out16.returncode == 0 and out8.returncode == 0, out16.stderr + out8.stderr
    assert out16.stdout.split("(")[0] == out8.stdout.split("(")[0]  # "class K "


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\xff\xd8\xff\xe0 a JPEG" + bytes(100), "not a PNG image"),
        (png(0, 8), "a PNG image of 0x8 pixels"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "a damaged PNG image"),
        (png(8, 8, rows=bytes(72))[:45], "not a readable PNG image"),  # cut in its IDAT
        (png(8, 8, rows=b"\x07" * 72), "not a readable PNG image"),  # rows of bad filter 7
    ],
)
def test_broken_pngs_are_refused(tmp_path, content, fragment):
    (tmp_path / "x.png").write_bytes(content)
    predict_fails(tmp_path, "x.png", "x.png", fragment)


# --- .npy inputs ------------------------------------------------------------------------------
def test_a_random_bytes_npy_gets_our_message_not_numpys(tmp_path):
    (tmp_path / "x.npy").write_bytes(np.random.default_rng(0).bytes(4000))
    predict_fails(tmp_path, "x.npy", "x.npy: not a NumPy .npy array", "never unpickles")


def test_a_pickled_npy_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    predict_fails(tmp_path, "x.npy", "x.npy: holds object arrays, which need pickle")


def test_an_npy_header_claiming_238_gib_is_refused_unread(tmp_path):
    (tmp_path / "x.npy").write_bytes(npy_header((32000, 1000, 1000), "<f8") + bytes(256))
    predict_fails(tmp_path, "x.npy", "shape (32000, 1000, 1000)", "238.4 GiB", "only 256 bytes")


def test_an_honest_npy_past_the_input_bound_is_refused_unread(tmp_path):
    header = npy_header((600, 1024, 1024))  # 600 MiB of uint8, as a sparse file
    with open(tmp_path / "x.npy", "wb") as f:
        f.write(header)
        f.truncate(len(header) + 600 * 1024**2)
    predict_fails(tmp_path, "x.npy", "600.0 MiB", "more than deltanet reads (512.0 MiB)")


@pytest.mark.parametrize(
    "array, fragments",
    [
        (np.zeros((2, 5), np.float32), ["holds an array of shape (2, 5)", "(N, 1, 8, 8)"]),
        (np.zeros((3, 1, 28, 28)), ["shape (3, 1, 28, 28)", "one example of shape (1, 8, 8)"]),
        (np.array(["a", "b"]), ["expected an array of numbers", "<U1"]),
        (np.float32(3.0), ["expected an array of numbers", "shape ()"]),
    ],
)
def test_npy_inputs_of_the_wrong_shape_or_kind_say_what_they_hold(tmp_path, array, fragments):
    np.save(tmp_path / "x.npy", array)
    predict_fails(tmp_path, "x.npy", "x.npy", *fragments)


@pytest.mark.parametrize("array", [np.zeros((8, 8)), np.zeros((4, 8, 8), np.uint8)])
def test_npy_images_without_the_channel_axis_are_read_with_a_note(tmp_path, array):
    np.save(tmp_path / "x.npy", array)
    proc = run_cli("predict", model_file(tmp_path), "x.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "deltanet: note:" in proc.stderr and "read with a channel axis" in proc.stderr
    assert proc.stdout.count("class ") == (1 if array.ndim == 2 else 4)


# --- summary and its flags --------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--model", "mlp", "--input-shape", "100000000"],
         ["--input-shape 100000000 holds 100,000,000 values per example",
          "one example's shape, without the batch axis"]),
        (["--model", "lenet5", "--input-shape", "64,1,28,28"],
         ["--input-shape 64,1,28,28", "leave out the batch axis"]),
        (["--model", "digits_cnn", "--input-shape", "1,1000,1000"],
         ["--input-shape 1,1000,1000", "dense layer of 16,000,000 x 128", "without the batch"]),
        (["--model", "mlp", "--num-classes", "1000000000"],
         ["--num-classes", "at most 1000 classes"]),
        (["--model", "mlp", "--input-shape", "0,3"], ["--input-shape", "1,28,28"]),
    ],
)  # fmt: skip
def test_summary_refuses_sizes_it_cannot_build_naming_the_flag(tmp_path, args, fragments):
    proc = run_cli("summary", *args, cwd=tmp_path, memory_mb=768, timeout=30)
    assert_clean_error(proc, *fragments)


def test_summary_of_a_model_file_bounds_input_shape_too(tmp_path):
    model = model_file(tmp_path)
    proc = run_cli("summary", model, "--input-shape", "1,5000,5000", cwd=tmp_path, memory_mb=768)
    assert_clean_error(proc, "--input-shape 1,5000,5000 holds 25,000,000 values per example")


def test_evaluate_batch_size_must_be_positive(tmp_path):
    proc = run_cli("evaluate", model_file(tmp_path), "--batch-size", "0", cwd=tmp_path)
    assert_clean_error(proc, "--batch-size", "expected an integer >= 1")


def test_evaluate_on_data_of_another_shape_gives_both_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 1, 28, 28)), y=np.arange(20) % 2)
    proc = run_cli("evaluate", model_file(tmp_path), "--data", "d.npz", cwd=tmp_path)
    assert_clean_error(proc, "the model takes examples of shape (1, 8, 8)",
                       "the test set of d has examples of shape (1, 28, 28)")  # fmt: skip


def test_data_notes_print_as_one_line(tmp_path):
    x = np.random.default_rng(0).random((30, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3)
    proc = run_cli("evaluate", model_file(tmp_path), "--data", "d.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line]
    assert len(notes) == 1 and notes[0].startswith("deltanet: note: d.npz: x has shape")


# --- Ctrl-C and closed pipes --------------------------------------------------------------------
INTERRUPT = """
    import runpy, sys

    class Interrupt:  # Ctrl-C as the module {name} starts to load
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "{name}":
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, Interrupt())
    sys.argv = ["deltanet", "summary", "--model", "mlp"]
    runpy.run_module("deltanet", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("name", ["deltanet.cli", "deltanet.cli.pack", "deltanet.cli.commands"])
def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(tmp_path, name):
    proc = run_python(INTERRUPT.replace("{name}", name), cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "deltanet: interrupted\n"


def test_ctrl_c_in_a_command_exits_130_without_a_traceback(tmp_path):
    code = """
        import deltanet.data, deltanet.cli

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        deltanet.data.load_dataset = interrupted
        raise SystemExit(deltanet.cli.main(["train", "--out", "out"]))
    """
    proc = run_python(code, cwd=tmp_path)
    assert proc.returncode == 130 and proc.stderr == "deltanet: interrupted\n", proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_a_real_ctrl_c_while_loading_data_exits_130(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 4)), y=np.arange(30) % 3)
    code = """
        import os, signal, deltanet.data, deltanet.cli
        load = deltanet.data.load_dataset

        def load_then_ctrl_c(*args, **kwargs):
            data = load(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGINT)
            return data

        deltanet.data.load_dataset = load_then_ctrl_c
        raise SystemExit(deltanet.cli.main(["train", "--data", "d.npz", "--out", "out"]))
    """
    proc = run_python(code, cwd=tmp_path)
    assert proc.returncode == 130 and proc.stderr.endswith("deltanet: interrupted\n"), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    model = build_model("mlp", input_shape=(4,), hidden=(3,), seed=0)
    dn.save(model, tmp_path / "m.safetensors", metadata={"run": {"input_shape": [4]}})
    np.save(tmp_path / "x.npy", np.zeros((20000, 4), np.float32))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deltanet", "predict", "m.safetensors", "x.npy"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().startswith("example 0")
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err and "Exception" not in err, err


FINDER = """
import sys

class Interrupt:  # Ctrl-C while the package itself loads (numpy, the layers, ...)
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "deltanet.layers":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupt())
"""


def _with_finder(tmp_path, *argv):
    """Run ``python ARGV`` with the finder installed at start-up (sitecustomize)."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FINDER)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    return subprocess.run(
        [sys.executable, *argv], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )


def test_ctrl_c_while_python_m_deltanet_imports_the_package_exits_130(tmp_path):
    proc = _with_finder(tmp_path, "-m", "deltanet", "summary", "--model", "mlp")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "deltanet: interrupted\n"


def test_ctrl_c_while_the_deltanet_command_imports_the_package_exits_130(tmp_path):
    script = tmp_path / "deltanet"  # what pip's console script runs
    script.write_text("import sys\nfrom deltanet.cli import main\nsys.exit(main())\n")
    proc = _with_finder(tmp_path, str(script), "summary", "--model", "mlp")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "deltanet: interrupted\n"


def test_ctrl_c_while_a_users_program_imports_deltanet_stays_the_users(tmp_path):
    (tmp_path / "mine.py").write_text("import deltanet\n")
    proc = _with_finder(tmp_path, "mine.py")
    assert proc.returncode != 130 and "KeyboardInterrupt" in proc.stderr


@pytest.mark.parametrize("batch", ["0", "257", "1000000000"])
def test_gradcheck_batch_out_of_range_names_the_flag(tmp_path, batch):
    proc = run_cli("gradcheck", "--model", "mlp", "--batch", batch, cwd=tmp_path)
    assert_clean_error(proc, "--batch must be from 1 to 256", f"Received: {batch}")
