"""An image folder whose decoded cache is larger than the memory a run may take beyond its
fixed costs: ``deltanet train``, ``evaluate`` and ``plot`` still run, reading it a chunk or a
batch at a time from memory-mapped files, while the in-memory split and standardisation of the
same data fails under the same cap.

The cap is ``RLIMIT_DATA``, which Linux applies to a process's private memory (heap and
anonymous mappings) but not to shared file mappings, so it limits what a run copies into
memory and not the memory-mapped files it reads. (``RLIMIT_AS``, which the fault harness uses,
counts mapped files too: a mapped cache larger than the cap would fail on being opened.) The
cap is measured rather than fixed: what this machine's Python takes once the run's imports, a
BLAS call and a plot are done, plus ``ALLOWANCE_MB`` for the model, a few batches and chunks.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA is Linux's")

IMAGES = 3000  # decoded at 64x64 RGB float32: 147 MB, the training split 106 MB
SIZE = "64x64"
ALLOWANCE_MB = 64  # beyond the fixed costs: the model, a few batches, the chunks


def _run(argv: list[str], tmp: Path, cap_mb: int | None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if cap_mb is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (cap_mb << 20, cap_mb << 20))

    env = dict(os.environ, DELTANET_DATA=str(tmp / "cache"), OPENBLAS_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *argv], cwd=tmp, capture_output=True, text=True, timeout=300,
        preexec_fn=limit, env=env,
    )  # fmt: skip


def _python(code: str, tmp: Path, cap_mb: int | None = None) -> subprocess.CompletedProcess[str]:
    return _run(["-c", textwrap.dedent(code)], tmp, cap_mb)


def _folder(root: Path) -> Path:
    """``IMAGES`` small PNGs in two classes (decoded larger: the cache's size is the point)."""
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        c = i % 2
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 128, (8, 8, 3), dtype=np.uint8) + np.uint8(100 * c)
        Image.fromarray(img).save(root / f"c{c}" / f"{i}.png")
    return root


def _fixed_costs_mb(tmp: Path) -> int:
    """The private memory of a Python that imported what a run imports, called BLAS and
    saved a plot: OpenBLAS's buffers and Matplotlib's are taken once, whatever the data."""
    proc = _python(
        """
        import deltanet.cli.main, deltanet.cli.commands, deltanet.cli.train, deltanet.train
        import deltanet.data.folder, deltanet.data.mapped, deltanet.io, deltanet.zoo
        import matplotlib; matplotlib.use("Agg")
        import matplotlib.pyplot as plt, numpy as np
        a = np.ones((256, 256), np.float32); a @ a
        fig, ax = plt.subplots(); ax.plot([0, 1]); fig.savefig("fixed.png")
        status = open("/proc/self/status").read()
        print(int(status.split("VmData:")[1].split()[0]) // 1024)
        """,
        tmp,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def test_a_folder_larger_than_the_cap_trains_evaluates_and_plots(tmp_path):
    folder = _folder(tmp_path / "shapes")
    cap = _fixed_costs_mb(tmp_path) + ALLOWANCE_MB
    probe = _python(f"import numpy as np; np.ones({cap} << 20, np.uint8)", tmp_path, cap)
    if probe.returncode == 0:
        pytest.skip("RLIMIT_DATA does not limit a process's memory on this system")

    out = tmp_path / "run"
    cli = ["-m", "deltanet"]
    train = [*cli, "train", "--data", str(folder), "--image-size", SIZE, "--model", "mlp"]
    proc = _run([*train, "--epochs", "1", "--quiet", "--out", str(out)], tmp_path, cap)
    assert proc.returncode == 0, proc.stderr
    (cache,) = (tmp_path / "cache" / "images").iterdir()
    decoded = sum(f.stat().st_size for f in cache.glob("x_*.f32"))
    assert decoded > 2 * (ALLOWANCE_MB << 20)  # the data: well beyond what the cap leaves
    derived = sorted(os.listdir(cache / "derived"))
    assert len(derived) == 3  # training, validation and test sets, standardised on disk

    proc = _run([*cli, "evaluate", str(out / "model.safetensors")], tmp_path, cap)
    assert proc.returncode == 0 and "accuracy" in proc.stdout, proc.stderr
    proc = _run([*cli, "plot", str(out)], tmp_path, cap)
    assert proc.returncode == 0 and "misclassified.png" in proc.stdout, proc.stderr
    assert sorted(os.listdir(cache / "derived")) == derived  # the test set train wrote, reused

    in_memory = f"""
        from deltanet.data import Standardizer, load_dataset, train_val_split
        ds = load_dataset({str(folder)!r}, image_size={SIZE!r})
        x, y, _, _ = train_val_split(ds.x_train, ds.y_train, 0.1, seed=0)
        Standardizer.fit(x).transform(x)
    """
    proc = _python(in_memory, tmp_path, cap)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr, proc.stderr
