"""Crash safety: a training process killed with SIGKILL at random moments never leaves a
corrupt or half-written checkpoint, and resuming from what is there ends where an
uninterrupted run ends, bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deltanet.io import load_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

KILLS = 12
MORE = 15  # epochs the last, uninterrupted run adds to what the killed runs left
FOREVER = 10**6  # the killed runs' epochs: they never finish on their own

# The training process: a wide MLP (a 1.6 MB checkpoint with Adam's state) and one batch per
# epoch, so that a large part of each epoch is the checkpoint's write.
CHILD = """
import os
import sys
import numpy as np
from deltanet.optim import Adam
from deltanet.train import ModelCheckpoint, fit
from deltanet.zoo import build_model

directory, epochs = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 64)).astype(np.float32)
y = rng.integers(0, 10, 32)
model = build_model("mlp", input_shape=(64,), hidden=(1024, 64), activation="relu", seed=0)
last = os.path.join(directory, "last.safetensors")
resume = last if os.path.exists(last) else None
print("ready", flush=True)
fit(model, "cross_entropy", Adam(model.parameters(), lr=1e-3), (x, y), epochs=epochs,
    batch_size=32, verbose=0, seed=1, resume_from=resume,
    callbacks=[ModelCheckpoint(directory, save_best=False)])
"""


def start(script: Path, directory: Path, epochs: int) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        # one BLAS thread: fast on a busy machine, and the same sums in every run
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, str(script), str(directory), str(epochs)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)


def checkpoint_epoch(directory: Path) -> int:
    """The epoch the checkpoint holds (0 when none was written); it must load cleanly."""
    path = directory / "last.safetensors"
    if not path.exists():
        return 0
    ckpt = load_checkpoint(path)  # FormatError here would be a corrupt checkpoint
    assert ckpt.optimizer_state is not None
    return int(ckpt.metadata["epoch"])


def test_sigkill_at_random_moments_never_corrupts_and_resume_finishes_exactly(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(CHILD)
    directory = tmp_path / "ckpt"
    rng = np.random.default_rng(0)
    epochs, mid_write = [], 0
    for _ in range(KILLS):
        child = start(script, directory, FOREVER)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.02, 0.35))  # after the imports, somewhere in fit
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        mid_write += any(n.endswith(".tmp") for n in os.listdir(directory))
        epochs.append(checkpoint_epoch(directory))
    assert epochs == sorted(epochs) and epochs[-1] > 0, epochs  # progress is never lost
    total = epochs[-1] + MORE
    finish = start(script, directory, total)
    reference = start(script, tmp_path / "reference", total)  # never interrupted
    for child in (finish, reference):
        child.communicate(timeout=300)
        assert child.returncode == 0
    # A finished write removes the temporary files that killed writers left behind.
    assert os.listdir(directory) == ["last.safetensors"]
    resumed = load_checkpoint(directory / "last.safetensors")
    expected = load_checkpoint(tmp_path / "reference" / "last.safetensors")
    assert resumed.metadata["epoch"] == expected.metadata["epoch"] == total
    for name, value in expected.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    for name, value in expected.optimizer_state.items():
        np.testing.assert_array_equal(resumed.optimizer_state[name], value, err_msg=name)
    print(f"checkpoint epochs after each kill: {epochs}; kills during a write: {mid_write}")
