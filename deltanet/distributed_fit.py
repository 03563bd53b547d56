"""What ``fit(..., distributed=True)`` adds to the loop: agreement, sharded steps, sync BN.

Kept apart from ``training`` so the single-process loop reads as before; every function here
runs collectives, so every rank calls it at the same point of the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from deltanet import distributed as dist
from deltanet.evaluation import LossFn, all_layers
from deltanet.layers.base import Layer
from deltanet.layers.dropout import Dropout
from deltanet.layers.norm import BatchNormND
from deltanet.layers.sequential import backward_parameters
from deltanet.metrics import predicted_classes
from deltanet.training_state import TrainingState

# What the ranks of a distributed fit must agree on (compared as digests before training).
FINGERPRINTS = ("seed", "model", "train data", "validation data", "loss", "optimizer",
                "settings", "resumed at")  # fmt: skip

rank, abort = dist.rank, dist.abort  # what training.fit calls through this module


def setup_failed(err: BaseException) -> None:
    """This rank failed before training: tell the others (they raise too), then raise."""
    dist.check_consistent(dict.fromkeys(FINGERPRINTS, ""), err)


def start(state: TrainingState, data: tuple, val: tuple | None, settings: tuple) -> None:
    """Check that the ranks agree (a ValueError on every rank if not); broadcast the weights."""
    dist.check_consistent(fingerprints(state, data, val, *settings))
    dist.broadcast_parameters(state.model)
    _decorrelate_dropout(state.model)
    state.distributed = True


def _decorrelate_dropout(model: Layer) -> None:
    """Give each rank's dropout layers their own stream of masks.

    Built from one seed, every rank's Dropout would draw the same masks, so example i of every
    shard would lose the same units. Each rank derives its stream from the shared one and its
    rank: reproducible, and different across ranks.
    """
    for layer in all_layers(model):
        if isinstance(layer, Dropout):
            layer.rng = np.random.default_rng([int(layer.rng.integers(2**63)), dist.rank()])


def fingerprints(
    state: TrainingState, data: tuple, val: tuple | None, loss: Any, seed: Any, shuffle: bool,
    resume_from: Any, sync_bn: bool,
) -> dict[str, str]:  # fmt: skip
    """``FINGERPRINTS`` of this rank's run: strings that are equal when the runs agree."""
    seed_text = repr(seed.bit_generator.state) if hasattr(seed, "bit_generator") else repr(seed)
    arrays = [dist.fingerprint_array(a) for a in (*data, *(val or ()))]
    optimizer = state.optimizer
    return {
        "seed": seed_text,
        "model": f"{state.model.num_parameters()} parameters {dist.architecture(state.model)}",
        "train data": " ".join(arrays[:2]),
        "validation data": " ".join(arrays[2:]) or "none",
        "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", repr(type(loss))),
        "optimizer": repr(optimizer.get_config())
        if hasattr(optimizer, "get_config")
        else type(optimizer).__name__,
        "settings": f"epochs={state.epochs} batch_size={state.batch_size} shuffle={shuffle} "
        f"sync_batch_norm={sync_bn}",
        # Where, not from which path: machines may mount the same checkpoint differently.
        "resumed at": f"epoch {state.epoch} step {state.step}"
        + ("" if resume_from is None else " (resumed)"),
    }


@contextmanager
def synchronised_batch_norm(model: Layer, enabled: bool) -> Iterator[None]:
    """While training, batch-norm layers reduce their statistics over the ranks."""
    if not enabled:
        yield
        return
    layers = [layer for layer in all_layers(model) if isinstance(layer, BatchNormND)]
    for layer in layers:
        layer.allreduce = dist.allreduce_sum
    try:
        yield
    finally:
        for layer in layers:
            layer.allreduce = None


def should_stop(state: TrainingState) -> bool:
    """``stop_training`` on every rank if any rank's callbacks set it (rank 0 runs more)."""
    flag = dist.allreduce_sum(np.array([float(state.stop_training)]), "fit (stop_training)")
    state.stop_training = bool(flag[0] > 0)
    return state.stop_training


def average_buffers(model: Layer) -> None:
    """Average float buffers (batch-norm running statistics) over ranks; the counts from rank 0."""
    if dist.world_size() == 1:
        return
    state = {k: np.asarray(v) for k, v in model.named_buffers()}
    if not state:
        return
    floats = {k: v for k, v in state.items() if np.issubdtype(v.dtype, np.floating)}
    flat = np.concatenate([v.ravel().astype(np.float64) for v in floats.values()] or [[]])
    dist.allreduce_sum(flat, "average_buffers")
    flat /= dist.world_size()
    counts = np.array([int(v) for k, v in state.items() if k not in floats], np.int64)
    dist.broadcast_array(counts, 0, "average_buffers")
    new, offset, ints = dict(model.state_dict()), 0, iter(counts)
    for k, v in state.items():
        if k in floats:
            new[k] = flat[offset : offset + v.size].reshape(v.shape).astype(v.dtype)
            offset += v.size
        else:
            new[k] = np.array(next(ints), v.dtype)
    model.load_state_dict(new)


def sharded_pass(state: TrainingState, xb, yb, loss_fn: LossFn) -> tuple[float, int, tuple]:
    """Forward and backward on this rank's shard, then the gradients summed over the ranks.

    The shard's mean-loss gradient is scaled by ``shard / batch``, so the sum over the ranks is
    the gradient of the global batch's mean loss, whatever the shard sizes (an empty shard
    still runs, so synchronised batch norm sees every rank). Returns the global mean loss and
    correct count (reduced with the gradients) and this rank's shard.
    """
    part = dist.shard(len(yb))
    xl, yl = xb[part], yb[part]
    logits = state.model(xl)
    sums = np.zeros(2)  # loss x examples, correct
    if len(yl):
        value, dlogits = loss_fn(logits, yl)
        sums[:] = float(value) * len(yl), np.count_nonzero(predicted_classes(logits) == yl)
        dlogits = dlogits * (len(yl) / len(yb))
    else:
        dlogits = np.zeros_like(logits)
    backward_parameters(state.model, dlogits)
    dist.allreduce_gradients(state.model, average=False, extra=sums)
    return sums[0] / len(yb), int(round(sums[1])), (xl, yl)
