"""The program ``tests/distributed/test_strategy.py`` runs under ``mpiexec -n N``, one scenario
per run.

``python -m tests.distributed.mpi_worker SCENARIO OUT_DIR``; rank 0 writes the results into
OUT_DIR. The same builders give the single-process reference inside the test.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

from deltanet import distributed as dist
from deltanet.layers import BatchNorm2D, Conv2D, Dense, Flatten, ReLU, Sequential
from deltanet.optim import SGD
from deltanet.train import Callback, ModelCheckpoint, TrainingDiverged, evaluate, fit
from tests.train.common import residual_net

BATCH, EXAMPLES = 24, 84  # 4 steps an epoch, the last on 12 examples (6 per rank of 2)


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, EXAMPLES)
    x = rng.standard_normal((EXAMPLES, 1, 6, 6)) + y[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


def model(batch_norm: bool = False, seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    norm = [BatchNorm2D(4)] if batch_norm else []
    return Sequential(Conv2D(1, 4, 3, rng=rng), *norm, ReLU(), Flatten(), Dense(64, 3, rng=rng))


def residual() -> Sequential:
    """Batch norm inside a custom block inside a Residual; no dropout (ranks draw their own)."""
    return residual_net(p=0.0)


def train(net, epochs, *, distributed=False, sync=False, seed=0, callbacks=(), resume=None,
          lr=0.05, data_seed=0, augment=None):  # fmt: skip
    optimizer = SGD(net, lr=lr, momentum=0.9)
    fit(net, "cross_entropy", optimizer, data(data_seed), epochs=epochs, batch_size=BATCH,
        seed=seed, verbose=0, distributed=distributed, sync_batch_norm=sync, callbacks=callbacks,
        resume_from=resume, augment=augment)  # fmt: skip
    return net


def save(out: str, name: str, net) -> None:
    if dist.rank() == 0:
        np.savez(os.path.join(out, name), *[p.data for p in net.parameters()])


class Fault(Callback):
    """On rank 1, after the second step: die, raise or hang."""

    def __init__(self, how: str) -> None:
        self.how = how

    def on_train_begin(self, logs=None) -> None:
        if self.how == "hang":  # short from here on: a slow start under load is no hang
            os.environ[dist.TIMEOUT_ENV] = "2"

    def on_batch_end(self, step, logs) -> None:
        if dist.rank() != 1 or step != 1:
            return
        if self.how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.how == "raise":
            raise RuntimeError("rank 1 fails on purpose")
        time.sleep(120)  # "hang": the others must give up after DELTANET_MPI_TIMEOUT


def primitives(out: str) -> None:
    """broadcast_parameters, allreduce_gradients and distributed evaluate, directly."""
    net = model(seed=dist.rank())  # different weights on each rank ...
    dist.broadcast_parameters(net)  # ... until rank 0's are broadcast
    for p in net.parameters():
        p.grad[...] = dist.rank() + 1.0
    dist.allreduce_gradients(net)  # the mean of 1 and 2
    grads = np.concatenate([p.grad.ravel() for p in net.parameters()])
    scores = evaluate(net, "cross_entropy", *data(), batch_size=10, distributed=True)
    if dist.rank() == 0:
        np.savez(os.path.join(out, "primitives.npz"), *[p.data for p in net.parameters()])
        np.savez(os.path.join(out, "reduced.npz"), grads=grads, scores=list(scores.values()))


def main(scenario: str, out: str) -> None:
    if scenario == "train":
        primitives(out)
        save(out, "plain.npz", train(model(), 2, distributed=True))
        save(out, "augmented.npz", train(model(), 2, distributed=True, augment="crop1,flip"))
        save(out, "sync_bn.npz", train(model(True), 2, distributed=True, sync=True))
        net = train(residual(), 2, distributed=True, sync=True)
        save(out, "residual_sync_bn.npz", net)
        buffers = {k.replace(".", "_"): v for k, v in net.named_buffers()}
        classes = np.array([type(layer).__name__ for layer in net.layers_tree()])
        np.savez(os.path.join(out, f"residual{dist.rank()}.npz"), classes=classes, **buffers)
        net = train(model(True), 2, distributed=True)
        save(out, "per_rank_bn.npz", net)
        buffers = {k.replace(".", "_"): v for k, v in net.named_buffers()}
        np.savez(os.path.join(out, f"buffers{dist.rank()}.npz"), **buffers)
        ckpt = ModelCheckpoint(os.path.join(out, "ckpt"), monitor="loss")
        train(model(), 1, distributed=True, callbacks=[ckpt])
        net = train(model(), 2, distributed=True, resume=os.path.join(out, "single.safetensors"))
        save(out, "resumed.npz", net)
        try:  # decided from reduced values: every rank raises it, none aborts
            train(model(), 1, distributed=True, lr=1e38)
        except TrainingDiverged as err:
            print(f"rank {dist.rank()} caught: TrainingDiverged: {err}", flush=True)
        bad = {
            "seed": {"seed": 1},
            "model": {},
            "data": {"data_seed": 1},
            "resume": {"resume": "missing.safetensors"},
        }
        for what, kwargs in bad.items():  # rank 1 differs from rank 0
            try:
                net = model(seed=0, batch_norm=what == "model" and dist.rank() == 1)
                train(net, 1, distributed=True, **(kwargs if dist.rank() == 1 else {}))
            except (ValueError, RuntimeError, FileNotFoundError) as err:
                print(f"rank {dist.rank()} caught: {type(err).__name__}: {err}", flush=True)
        return
    train(model(), 2, distributed=True, callbacks=[Fault(scenario)])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
