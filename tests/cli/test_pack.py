"""``deltanet pack MODEL OUT``, and ``evaluate`` / ``predict`` on the packed file."""

import numpy as np
import pytest

from deltanet import io
from deltanet.cli import main
from deltanet.zoo import build_model
from tests.cli.test_commands import tiny_arrays


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A binary_lenet trained for one epoch on the tiny data through ``deltanet train``."""
    d = tmp_path_factory.mktemp("pack")
    x, y = tiny_arrays(40)
    np.savez(d / "tiny.npz", x=x, y=y)
    args = ["train", "--model", "binary_lenet", "--epochs", "1", "--data", d / "tiny.npz"]
    assert main([str(a) for a in [*args, "--out", d / "run"]]) == 0
    return d


def test_pack_then_evaluate_and_predict(trained, capsys):
    model_file, packed_file = trained / "run" / "model.safetensors", trained / "packed.safetensors"
    status, out, _ = run(capsys, "pack", model_file, packed_file)
    assert status == 0
    assert out.count("-> PackedConv") == 2 and out.count("-> PackedDense") == 1
    assert "kept as it is" in out and packed_file.stat().st_size < model_file.stat().st_size / 5
    status, float_out, _ = run(capsys, "evaluate", model_file)
    assert status == 0
    status, packed_out, _ = run(capsys, "evaluate", packed_file)
    assert status == 0 and "accuracy" in packed_out
    assert packed_out.splitlines()[1:] == float_out.splitlines()[1:]  # same scores
    np.save(trained / "three.npy", tiny_arrays(40)[0][:3])
    status, out, _ = run(capsys, "predict", packed_file, trained / "three.npy")
    assert status == 0 and out.count("example ") == 3
    status, _, err = run(capsys, "pack", model_file, packed_file)
    assert status == 2 and "exists" in err  # never overwritten without --force
    assert run(capsys, "pack", model_file, packed_file, "--force")[0] == 0


def test_pack_of_a_model_without_1bit_layers(tmp_path, capsys):
    io.save(build_model("digits_cnn"), tmp_path / "float.safetensors")
    status, _, err = run(capsys, "pack", tmp_path / "float.safetensors", tmp_path / "out")
    assert status == 2 and "has no 1-bit layer" in err
    status, _, err = run(capsys, "pack", tmp_path / "missing.safetensors", tmp_path / "out")
    assert status == 2 and "no model file" in err


def test_pack_of_a_residual_binary_model_reports_sizes_of_the_whole_model(tmp_path, capsys):
    """bireal_resnet1d: 12 binary convs pack; the table covers them, the folded batch norms,
    the dropped signs and the float layers (stem, shortcuts, dense), then the two files."""
    model = build_model("bireal_resnet1d", channels=(8, 16, 16), blocks=1)
    io.save(model, tmp_path / "bireal.safetensors", metadata={"run": {"input_shape": [1, 40]}})
    status, out, _ = run(capsys, "pack", tmp_path / "bireal.safetensors", tmp_path / "p")
    assert status == 0 and out.count("-> PackedConv") == 6
    rows = {line.split("  ")[1]: line.split()[-3:] for line in out.splitlines()
            if line.startswith("  ") and ":" not in line}  # fmt: skip
    binary = sum(
        layer.weight.data.nbytes for _, layer in model.named_layers() if hasattr(layer, "is_binary")
    )
    assert rows["1-bit layers"][1] == f"{binary:,}"
    assert rows["folded batch norms"][0] == "6" and rows["folded batch norms"][2] == "0"
    assert rows["float layers"][1] == rows["float layers"][2]
    total = sum(v.nbytes for v in model.state_dict().values())
    assert rows["all tensors"][-2] == f"{total:,}"
    size, packed_size = (tmp_path / "bireal.safetensors").stat().st_size, (tmp_path / "p").stat()
    assert rows["file"][-2:] == [f"{size:,}", f"{packed_size.st_size:,}"]
    assert f"wrote {tmp_path / 'p'}: {packed_size.st_size:,} bytes (from {size:,}" in out
