"""MPIStrategy: what data-parallel training adds to the fit loop, one hook at a time.

Before training the ranks compare fingerprints of their runs (a clear error on every rank if
they differ), rank 0's weights are broadcast and each rank's layer Generators (dropout) get
their own stream. Each step runs this rank's shard of the global batch and sums the gradients
over the ranks; batch norm uses each shard's statistics (the running ones averaged after each
epoch) or, with ``sync_batch_norm``, the global batch's (``SyncBatchNorm`` during the steps).
Only rank 0 prints and writes files; an exception on any rank during training aborts the job.
Every hook runs collectives, so every rank calls it at the same point of the loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from deltanet.distributed import model as dmodel
from deltanet.distributed import mpi
from deltanet.distributed.sync_batch_norm import (
    SyncBatchNorm,
    convert_sync_batch_norm,
    revert_sync_batch_norm,
)
from deltanet.layers.base import Layer
from deltanet.layers.norm import BatchNormND
from deltanet.metrics import predicted_classes
from deltanet.ops.losses import LossFn
from deltanet.train.divergence import TrainingDiverged
from deltanet.train.state import TrainingState, layer_generators
from deltanet.train.strategy import Batch, Strategy

# What the ranks of a distributed fit must agree on (compared as digests before training).
FINGERPRINTS = ("seed", "model", "train data", "validation data", "loss", "optimizer",
                "settings", "resumed at")  # fmt: skip


class MPIStrategy(Strategy):
    """Data-parallel training over the ranks of ``MPI.COMM_WORLD`` (``fit(distributed=True)``).

    ``sync_batch_norm``: batch norm with the statistics of the global batch during the training
    steps (exact: N ranks reach the weights of one process), instead of each rank's shard.
    Needs mpi4py (a clear ImportError otherwise).
    """

    def __init__(self, sync_batch_norm: bool = False) -> None:
        if not isinstance(sync_batch_norm, bool):
            raise TypeError(
                f"MPIStrategy: sync_batch_norm must be a bool. Received: {sync_batch_norm!r}."
            )
        mpi.require()
        self.sync_batch_norm = sync_batch_norm

    @property
    def is_primary(self) -> bool:
        return mpi.rank() == 0

    def setup_failed(self, err: BaseException) -> None:
        """Tell the other ranks (they raise too, naming this rank); ``fit`` then raises."""
        mpi.check_consistent(dict.fromkeys(FINGERPRINTS, ""), err)

    def start(
        self, state: TrainingState, data: Batch, val: Batch | None, settings: Mapping[str, Any]
    ) -> None:
        """Check that the ranks agree (a ValueError on every rank if not); broadcast the weights."""
        if self.sync_batch_norm and isinstance(state.model, BatchNormND):
            raise TypeError(  # the same on every rank: no rank is left waiting
                "fit: with sync_batch_norm=True the model must hold its batch-norm layers, "
                "not be one; wrap it in a Sequential."
            )
        mpi.check_consistent(fingerprints(state, data, val, settings, self.sync_batch_norm))
        dmodel.broadcast_parameters(state.model)
        decorrelate_generators(state.model)
        state.distributed = True

    @contextmanager
    def epoch(self, model: Layer) -> Iterator[None]:
        """With ``sync_batch_norm``: SyncBatchNorm in place of each batch norm while stepping."""
        if not self.sync_batch_norm:
            yield
            return
        convert_sync_batch_norm(model)
        try:
            yield
        finally:
            revert_sync_batch_norm(model)

    def step(
        self, model: Layer, xb: np.ndarray, yb: np.ndarray, loss_fn: LossFn
    ) -> tuple[float, int, Batch]:
        """Forward and backward on this rank's shard, then the gradients summed over the ranks.

        The shard's mean-loss gradient is scaled by ``shard / batch``, so the sum over the ranks
        is the gradient of the global batch's mean loss, whatever the shard sizes (an empty
        shard still runs, so synchronised batch norm sees every rank). The loss and correct
        count are reduced with the gradients.
        """
        part = mpi.shard(len(yb))
        xl, yl = xb[part], yb[part]
        logits = model(xl)
        sums = np.zeros(2)  # loss x examples, correct
        if len(yl):
            value, dlogits = loss_fn(logits, yl)
            sums[:] = float(value) * len(yl), np.count_nonzero(predicted_classes(logits) == yl)
            dlogits = dlogits * (len(yl) / len(yb))
        else:
            dlogits = np.zeros_like(logits)
        model.backward(dlogits, input_grad=False)
        dmodel.allreduce_gradients(model, average=False, extra=sums)
        return float(sums[0] / len(yb)), int(round(sums[1])), (xl, yl)

    @contextmanager
    def local(self, model: Layer) -> Iterator[None]:
        """Synchronised batch norm reduces over this rank alone (no collective can hang)."""
        layers = [layer for layer in model.layers_tree() if isinstance(layer, SyncBatchNorm)]
        saved = [layer.allreduce for layer in layers]
        for layer in layers:
            layer.allreduce = _identity
        try:
            yield
        finally:
            for layer, allreduce in zip(layers, saved):
                layer.allreduce = allreduce

    def end_epoch(self, model: Layer) -> None:
        """Per-rank batch norm: its running statistics averaged over the ranks."""
        if not self.sync_batch_norm:
            dmodel.average_buffers(model)

    def should_stop(self, stop: bool) -> bool:
        """Stop on every rank if any rank's callbacks asked to (rank 0 runs more of them)."""
        flag = mpi.allreduce_sum(np.array([float(stop)]), "fit (stop_training)")
        return bool(flag[0] > 0)

    def shard(self, n: int) -> slice:
        return mpi.shard(n)

    def reduce(self, sums: np.ndarray, what: str) -> np.ndarray:
        return mpi.allreduce_sum(sums, what)

    def on_error(self, err: Exception) -> None:
        """Abort every rank, unless every rank raises it too (divergence: decided from reduced
        values)."""
        if not isinstance(err, TrainingDiverged):
            mpi.abort(f"fit failed: {type(err).__name__}: {err}")


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def decorrelate_generators(model: Layer) -> None:
    """Give each rank's layer Generators (dropout) their own stream of random numbers.

    Built from one seed, every rank's Dropout would draw the same masks, so example i of every
    shard would lose the same units. Each rank derives its stream from the shared one and its
    rank: reproducible, and different across ranks. The Generators are reseeded in place.
    """
    generators = {id(g): g for _, g in layer_generators(model)}  # a shared one reseeded once
    for g in generators.values():
        bits = type(g.bit_generator)([int(g.integers(2**63)), mpi.rank()])
        g.bit_generator.state = bits.state


def fingerprints(
    state: TrainingState,
    data: Batch,
    val: Batch | None,
    settings: Mapping[str, Any],
    sync_bn: bool,
) -> dict[str, str]:
    """``FINGERPRINTS`` of this rank's run: strings that are equal when the runs agree."""
    seed, loss = settings["seed"], settings["loss"]
    seed_text = repr(seed.bit_generator.state) if hasattr(seed, "bit_generator") else repr(seed)
    arrays = [mpi.fingerprint_array(a) for a in (*data, *(val or ()))]
    optimizer = state.optimizer
    return {
        "seed": seed_text,
        "model": f"{state.model.num_parameters()} parameters {dmodel.architecture(state.model)}",
        "train data": " ".join(arrays[:2]),
        "validation data": " ".join(arrays[2:]) or "none",
        "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", repr(type(loss))),
        "optimizer": repr(optimizer.get_config())
        if hasattr(optimizer, "get_config")
        else type(optimizer).__name__,
        "settings": f"epochs={state.epochs} batch_size={state.batch_size} "
        f"shuffle={settings['shuffle']} sync_batch_norm={sync_bn}"
        f" augment={settings.get('augment') or 'none'}",
        # Where, not from which path: machines may mount the same checkpoint differently.
        "resumed at": f"epoch {state.epoch} step {state.step}"
        + ("" if settings["resume_from"] is None else " (resumed)"),
    }
