"""MPIStrategy: ``mpiexec -n 2`` runs against one process, faults, the command line.

The MPI runs start ``python -m tests.distributed.mpi_worker`` under ``mpiexec -n 2`` (skipped
cleanly when mpi4py or mpiexec is missing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deltanet import distributed as dist
from deltanet.distributed import mpi
from deltanet.distributed.strategy import MPIStrategy, decorrelate_generators
from deltanet.layers import BatchNorm1D
from deltanet.optim import SGD
from deltanet.train import ModelCheckpoint, evaluate, fit
from tests.distributed.mpi_worker import data, model, residual, train

ROOT = Path(__file__).resolve().parents[2]


def _mpiexec() -> str:
    pytest.importorskip("mpi4py")
    found = shutil.which(
        "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if found is None:
        pytest.skip("mpiexec is not installed")
    return found


def run_mpi(scenario: str, out: Path, *, ranks: int = 2, timeout: float = 30.0):
    """``mpiexec -n ranks python -m tests.distributed.mpi_worker scenario out``;
    (returncode, output, seconds)."""
    env = {**os.environ, "DELTANET_MPI_TIMEOUT": str(timeout), "OPENBLAS_NUM_THREADS": "1"}
    worker = "tests.distributed.mpi_worker"
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", worker, scenario]
    start = time.monotonic()
    proc = subprocess.run(
        [*cmd, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[k] for k in f.files]


def assert_weights(saved: list[np.ndarray], net, atol: float = 1e-5) -> None:
    assert len(saved) == len(net.parameters())
    for a, p in zip(saved, net.parameters(), strict=True):
        np.testing.assert_allclose(a, p.data, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One ``mpiexec -n 2`` run of every training scenario (tests/mpi_worker.py, ``train``)."""
    out = tmp_path_factory.mktemp("mpi")
    single = ModelCheckpoint(out / "single.safetensors", monitor="loss")
    train(model(), 1, callbacks=[single])  # one process's epoch 1, resumed by 2 ranks
    code, output, _ = run_mpi("train", out)
    assert code == 0, output
    return out, output


# --- N ranks reach the weights of one process ------------------------------------------------


def test_two_ranks_match_one_process(two_ranks):
    out, _ = two_ranks
    assert_weights(arrays(out / "plain.npz"), train(model(), 2))


def test_two_ranks_augment_the_global_batch_as_one_process(two_ranks):
    out, _ = two_ranks
    single = train(model(), 2, augment="crop1,flip")
    assert_weights(arrays(out / "augmented.npz"), single)
    assert np.max(np.abs(arrays(out / "plain.npz")[0] - single.parameters()[0].data)) > 1e-3


def test_sync_batch_norm_matches_one_process_and_per_rank_does_not(two_ranks):
    out, _ = two_ranks
    single = train(model(batch_norm=True), 2)
    assert_weights(arrays(out / "sync_bn.npz"), single)
    per_rank = arrays(out / "per_rank_bn.npz")  # each rank normalises with its own shard
    assert max(np.max(np.abs(a - p.data)) for a, p in zip(per_rank, single.parameters())) > 1e-3
    buffers = [dict(np.load(out / f"buffers{r}.npz")) for r in (0, 1)]  # averaged over ranks
    assert sorted(buffers[0]) == ["1_num_batches_tracked", "1_running_mean", "1_running_var"]
    for key, value in buffers[0].items():
        np.testing.assert_array_equal(value, buffers[1][key])


def test_sync_batch_norm_inside_a_custom_block_matches_one_process(two_ranks):
    out, _ = two_ranks
    single = train(residual(), 2)
    assert_weights(arrays(out / "residual_sync_bn.npz"), single)
    runs = [dict(np.load(out / f"residual{r}.npz")) for r in (0, 1)]
    for run in runs:  # after fit the model holds its own layers again, with global statistics
        classes = list(run.pop("classes"))
        assert classes == [type(layer).__name__ for layer in single.layers_tree()]
        assert "BatchNorm2D" in classes and "SyncBatchNorm" not in classes
        for key, value in single.named_buffers():
            np.testing.assert_allclose(run[key.replace(".", "_")], value, rtol=1e-5, atol=1e-6)


def test_resume_with_a_different_number_of_ranks(two_ranks):
    out, _ = two_ranks
    uninterrupted = train(model(), 2)
    assert_weights(arrays(out / "resumed.npz"), uninterrupted)  # 1 process, then 2 ranks
    resumed = train(model(), 2, resume=out / "ckpt" / "last.safetensors")  # 2 ranks, then 1
    assert_weights([p.data for p in resumed.parameters()], uninterrupted)


def test_broadcast_allreduce_and_distributed_evaluate(two_ranks):
    out, _ = two_ranks
    assert_weights(arrays(out / "primitives.npz"), model(seed=0), atol=0)
    with np.load(out / "reduced.npz") as f:
        np.testing.assert_array_equal(f["grads"], 1.5)  # the mean of rank 0's 1 and rank 1's 2
        scores = evaluate(model(seed=0), "cross_entropy", *data(), batch_size=10)
        np.testing.assert_allclose(f["scores"], list(scores.values()), rtol=1e-6)


def test_mismatched_seed_or_model_is_an_error_on_every_rank(two_ranks):
    _, output = two_ranks
    for rank in (0, 1):
        assert f"rank {rank} caught: ValueError: distributed: the ranks disagree" in output
    assert "seed differs (rank 0: '0', rank 1: '1')" in output
    assert "model differs (rank 0: '235 parameters" in output
    assert "train data differs (rank 0: '(84, 1, 6, 6) float32" in output


def test_divergence_is_raised_on_every_rank(two_ranks):
    _, output = two_ranks
    for rank in (0, 1):
        assert f"rank {rank} caught: TrainingDiverged: " in output


def test_a_rank_that_fails_before_training_stops_every_rank(two_ranks):
    _, output = two_ranks
    missing = "fit: resume_from: no checkpoint file at 'missing.safetensors'."
    assert f"rank 1 caught: FileNotFoundError: {missing}" in output
    expected = "rank 0 caught: RuntimeError: distributed: rank 1 of 2 failed: FileNotFoundError"
    assert f"{expected}: {missing}" in output


# --- faults: never a hang ----------------------------------------------------------------------


def test_a_killed_rank_stops_the_others(tmp_path):
    code, output, seconds = run_mpi("kill", tmp_path)
    assert code != 0 and seconds < 60
    assert "BAD TERMINATION" in output or "signal 9" in output.lower(), output


def test_a_rank_that_raises_aborts_the_job(tmp_path):
    code, output, seconds = run_mpi("raise", tmp_path)
    assert code != 0 and seconds < 60
    assert "rank 1 of 2: fit failed: RuntimeError: rank 1 fails on purpose" in output, output
    assert "Aborting all ranks (MPI Abort)" in output


def test_a_hung_rank_makes_the_others_give_up_after_the_timeout(tmp_path):
    code, output, seconds = run_mpi("hang", tmp_path)  # the worker sets 2 s once training
    assert code != 0 and seconds < 60
    assert "rank 0 of 2: allreduce_gradients waited 2 s for the other ranks" in output, output


# --- one process: distributed=True is plain training; bad input ----------------------------------


def test_one_rank_is_plain_training():
    pytest.importorskip("mpi4py")
    assert (dist.rank(), dist.world_size()) == (0, 1)
    a = train(model(True), 2, distributed=True, sync=True)
    assert_weights([p.data for p in a.parameters()], train(model(True), 2), atol=1e-6)


def test_bad_arguments():
    net = model()
    opt = SGD(net, lr=0.1)
    with pytest.raises(TypeError, match="fit: distributed must be a bool. Received: distributed="):
        fit(net, "cross_entropy", opt, data(), distributed="yes")
    with pytest.raises(ValueError, match="fit: sync_batch_norm=True needs distributed=True"):
        fit(net, "cross_entropy", opt, data(), sync_batch_norm=True)
    with pytest.raises(TypeError, match="allreduce_gradients: model must be a deltanet Layer"):
        dist.allreduce_gradients("model")
    with pytest.raises(TypeError, match="broadcast_parameters: model must be a deltanet Layer"):
        dist.broadcast_parameters(None)
    with pytest.raises(ValueError, match="fit: pass either strategy or distributed"):
        fit(net, "cross_entropy", opt, data(), strategy=MPIStrategy(), sync_batch_norm=True)
    with pytest.raises(TypeError, match="MPIStrategy: sync_batch_norm must be a bool"):
        MPIStrategy(sync_batch_norm="yes")
    pytest.importorskip("mpi4py")
    bn = BatchNorm1D(2)
    with pytest.raises(TypeError, match="must hold its batch-norm layers, not be one"):
        fit(bn, "mse", SGD(bn), (np.ones((4, 2), np.float32), np.zeros(4, np.int64)),
            distributed=True, sync_batch_norm=True, verbose=0)  # fmt: skip


# --- the command line ----------------------------------------------------------------------------


def test_cli_distributed_run_writes_one_run_directory(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.standard_normal((90, 1, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    env = {**os.environ, "DELTANET_MPI_TIMEOUT": "60", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "deltanet", "train", "--distributed"]
    args = ["--data", str(tmp_path / "blobs.npz"), "--epochs", "1", "--out", str(tmp_path / "run")]
    proc = subprocess.run(
        [*cmd, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run directory:") == 1  # only rank 0 prints
    assert "data-parallel over 2 MPI ranks (batch-norm statistics: per rank)" in proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and 0 <= metrics["test_accuracy"] <= 1
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs.npz", "run"]


def test_cli_sync_batch_norm_needs_distributed(capsys):
    from deltanet.cli import main

    assert main(["train", "--sync-batch-norm", "--epochs", "1"]) == 2
    assert "--sync-batch-norm needs --distributed" in capsys.readouterr().err


def test_missing_mpi4py_is_a_clear_error(monkeypatch, capsys):
    from deltanet.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    assert (dist.available(), dist.rank(), dist.world_size()) == (False, 0, 1)
    with pytest.raises(ImportError, match=r'needs mpi4py .*pip install "deltanet\[mpi\]"'):
        train(model(), 1, distributed=True)
    assert main(["train", "--distributed", "--epochs", "1"]) == 2
    assert "--distributed needs mpi4py" in capsys.readouterr().err


def test_each_rank_draws_its_own_dropout_masks(monkeypatch):
    from deltanet import Dropout, Sequential
    from deltanet.layers.containers import Residual

    def masks(rank: int) -> np.ndarray:
        monkeypatch.setattr(mpi, "rank", lambda: rank)
        net = Sequential(Dropout(0.5, rng=0), Residual(Dropout(0.5, rng=0)))
        decorrelate_generators(net)
        return net(np.ones((4, 64), np.float32)) != 0

    assert np.array_equal(masks(0), masks(0))  # reproducible from the seed
    assert not np.array_equal(masks(0), masks(1))  # but not shared across ranks
    legacy = np.random.default_rng([int(np.random.default_rng(0).integers(2**63)), 1])
    reseeded = Dropout(0.5, rng=0)
    monkeypatch.setattr(mpi, "rank", lambda: 1)
    decorrelate_generators(reseeded)  # the stream of earlier versions, kept in place
    assert reseeded.rng.integers(2**63) == legacy.integers(2**63)
