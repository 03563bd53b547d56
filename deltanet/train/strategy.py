"""How the fit loop spreads its work over processes: the Strategy interface, and one process.

``fit`` and ``evaluate`` run the same loop whatever the number of processes; every point where
data-parallel training differs from one process is a method here. ``Strategy`` itself is the
single-process behaviour (``LocalStrategy``); ``deltanet.distributed.MPIStrategy`` overrides
each method with its MPI counterpart (agreement before training, sharded steps, allreduces,
synchronised batch norm, rank 0 alone writing files, MPI Abort on error).

Every method is called by every process at the same point of the loop, so a strategy may run
collectives in any of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from deltanet.layers.base import Layer
from deltanet.metrics import predicted_classes
from deltanet.ops.losses import LossFn
from deltanet.train.state import TrainingState

Batch = tuple[np.ndarray, np.ndarray]


class Strategy:
    """The fit loop's hooks for spreading work over processes; the defaults run one process."""

    @property
    def is_primary(self) -> bool:
        """Whether this process prints and runs the ``rank_zero_only`` callbacks (files)."""
        return True

    def setup_failed(self, err: BaseException) -> None:
        """This process failed before training (bad arguments, a missing checkpoint).

        Called instead of ``start``; ``fit`` re-raises ``err`` afterwards.
        """

    def start(
        self, state: TrainingState, data: Batch, val: Batch | None, settings: Mapping[str, Any]
    ) -> None:
        """Before the first epoch: ``settings`` holds ``loss``, ``seed``, ``shuffle`` and
        ``resume_from``, as ``fit`` received them, and ``augment`` (its spec, or None).

        ``step`` receives the global batch already augmented (from a Generator derived from the
        seed, the same on every process), so sharding it gives what one process would run."""

    @contextmanager
    def epoch(self, model: Layer) -> Iterator[None]:
        """Around each epoch's optimizer steps (not around validation or epoch-end callbacks)."""
        yield

    def step(
        self, model: Layer, xb: np.ndarray, yb: np.ndarray, loss_fn: LossFn
    ) -> tuple[float, int, Batch]:
        """Forward and backward on the global batch ``(xb, yb)``; every ``Parameter.grad`` then
        holds the gradient of the batch's mean loss.

        Returns ``(mean loss, correct count, (x, y))``: the loss and count of the global batch
        and the rows this process ran (what a divergence diagnosis re-runs).
        """
        logits = model(xb)
        value, dlogits = loss_fn(logits, yb)
        correct = int(np.count_nonzero(predicted_classes(logits) == yb))
        model.backward(dlogits, input_grad=False)
        return float(value), correct, (xb, yb)

    @contextmanager
    def local(self, model: Layer) -> Iterator[None]:
        """Where ``model`` must run on this process alone (re-running a batch to diagnose it)."""
        yield

    def end_epoch(self, model: Layer) -> None:
        """After each epoch's steps, before validation."""

    def should_stop(self, stop: bool) -> bool:
        """Whether to stop after this epoch, given this process's callbacks' ``stop``."""
        return stop

    def shard(self, n: int) -> slice:
        """The rows of an ``n``-row evaluation set that this process evaluates."""
        return slice(0, n)

    def reduce(self, sums: np.ndarray, what: str) -> np.ndarray:
        """Sums over the processes of ``sums`` (float64, in place); returns it."""
        return sums

    def on_error(self, err: Exception) -> None:
        """An exception during training, before ``fit`` re-raises it."""


class LocalStrategy(Strategy):
    """One process: every hook of ``Strategy`` as is (``fit``'s default)."""
