"""Data-parallel training over MPI: ``mpiexec -n 2`` runs against one process, faults, sync BN.

The MPI runs start ``python -m tests.mpi_worker`` under ``mpiexec -n 2`` (skipped cleanly when
mpi4py or mpiexec is missing); the batch-norm math across ranks is also checked in-process with
two threads standing in for two ranks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deltanet import distributed as dist
from deltanet.callbacks import ModelCheckpoint
from deltanet.layers import BatchNorm2D
from deltanet.layers.norm import sync_batch_norm_backward, sync_batch_norm_forward
from deltanet.ops.norm import batch_norm_backward, batch_norm_forward
from deltanet.optim import SGD
from deltanet.training import evaluate, fit
from tests.mpi_worker import data, model, train
from tests.utils import check_grads, torch_or_skip

ROOT = Path(__file__).resolve().parent.parent


def _mpiexec() -> str:
    pytest.importorskip("mpi4py")
    found = shutil.which(
        "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if found is None:
        pytest.skip("mpiexec is not installed")
    return found


def run_mpi(scenario: str, out: Path, *, ranks: int = 2, timeout: float = 30.0):
    """``mpiexec -n ranks python -m tests.mpi_worker scenario out``; (returncode, output, s)."""
    env = {**os.environ, "DELTANET_MPI_TIMEOUT": str(timeout), "OPENBLAS_NUM_THREADS": "1"}
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "tests.mpi_worker", scenario]
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


def test_timeout_setting(monkeypatch):
    monkeypatch.setenv(dist.TIMEOUT_ENV, "2.5")
    assert dist.timeout() == 2.5
    monkeypatch.setenv(dist.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="DELTANET_MPI_TIMEOUT must be a positive number"):
        dist.timeout()


@pytest.mark.parametrize("n", [0, 1, 5, 24])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shards_cover_the_batch_once(n, size):
    rows = [list(range(n))[dist.shard(n, r, size)] for r in range(size)]
    assert sum(rows, []) == list(range(n))
    assert max(map(len, rows)) - min(map(len, rows)) <= 1


# --- synchronised batch norm: the math across ranks, in one process ------------------------------


def _naive_batch_norm(x, gamma, beta, eps):
    """Loop over channels: normalise each by the mean and biased variance of all its values."""
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        v = x[:, c]
        y[:, c] = (v - v.mean()) / np.sqrt(((v - v.mean()) ** 2).mean() + eps) * gamma[c] + beta[c]
    return y


def _threads_as_ranks(fn, parts):
    """Run ``fn(part, allreduce)`` in one thread per part; allreduce sums over the threads."""
    slots, results = [None] * len(parts), [None] * len(parts)
    barrier = threading.Barrier(len(parts))

    def work(r):
        def allreduce(a):
            slots[r] = a
            barrier.wait()
            total = sum(s.copy() for s in slots)
            barrier.wait()
            a[...] = total
            return a

        results[r] = fn(parts[r], allreduce)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_sync_batch_norm_over_two_ranks_equals_the_whole_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 4, 5)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y, cache = batch_norm_forward(x, gamma, beta, 1e-5)
    dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    np.testing.assert_allclose(y, _naive_batch_norm(x, gamma, beta, 1e-5), atol=1e-12)

    def rank_pass(part, allreduce):
        xs, dys = part
        ys, c = sync_batch_norm_forward(xs, gamma, beta, 1e-5, allreduce)
        return ys, sync_batch_norm_backward(dys, c)

    shards = [(x[:3], dy[:3]), (x[3:], dy[3:])]  # unequal shards: 3 and 4 examples
    out = _threads_as_ranks(rank_pass, shards)
    np.testing.assert_allclose(np.concatenate([o[0] for o in out]), y, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([o[1][0] for o in out]), dx, atol=1e-12)
    np.testing.assert_allclose(sum(o[1][1] for o in out), dgamma, atol=1e-12)
    np.testing.assert_allclose(sum(o[1][2] for o in out), dbeta, atol=1e-12)


def test_sync_batch_norm_gradients_and_torch_parity():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3, 3))
    gamma, beta = rng.standard_normal(2) + 2, rng.standard_normal(2)

    def forward(dy):
        y, cache = sync_batch_norm_forward(x, gamma, beta, 1e-5, lambda a: a)
        return y, (None if dy is None else sync_batch_norm_backward(dy, cache))

    check_grads(forward, [x, gamma, beta])
    torch = torch_or_skip()
    tx = torch.tensor(x, requires_grad=True)
    bn = torch.nn.BatchNorm2d(2, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    ty = bn(tx)
    dy = rng.standard_normal(x.shape)
    ty.backward(torch.tensor(dy))
    y, grads = forward(dy)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    for mine, theirs in zip(grads, (tx.grad, bn.weight.grad, bn.bias.grad), strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-10)


def test_layer_with_allreduce_tracks_global_running_statistics():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)

    def layer_pass(xs, allreduce):
        layer = BatchNorm2D(3)
        layer.allreduce = allreduce
        layer(xs)
        return layer.running_mean.copy(), layer.running_var.copy()

    whole = BatchNorm2D(3)
    whole(x)
    for mean, var in _threads_as_ranks(layer_pass, [x[:2], x[2:]]):
        np.testing.assert_allclose(mean, whole.running_mean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(var, whole.running_var, rtol=1e-5, atol=1e-7)


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
    from deltanet import distributed_fit as dfit

    def masks(rank: int) -> np.ndarray:
        monkeypatch.setattr(dfit.dist, "rank", lambda: rank)
        net = Sequential(Dropout(0.5, rng=0))
        dfit._decorrelate_dropout(net)
        return net(np.ones((4, 64), np.float32)) != 0

    assert np.array_equal(masks(0), masks(0))  # reproducible from the seed
    assert not np.array_equal(masks(0), masks(1))  # but not shared across ranks
