"""The strategy that ``fit(..., distributed=..., sync_batch_norm=..., strategy=...)`` asks for.

Apart from ``deltanet.train.strategy`` because it imports ``deltanet.distributed`` (lazily,
for ``distributed=True``), which itself builds on that module.
"""

from __future__ import annotations

from typing import Any

from deltanet.train.strategy import LocalStrategy, Strategy


def select_strategy(
    where: str, strategy: Any, distributed: Any, sync_batch_norm: Any = False
) -> Strategy:
    """``strategy`` if given; else ``MPIStrategy(sync_batch_norm)`` for ``distributed=True``
    (mpi4py must import) and ``LocalStrategy()`` otherwise."""
    flags = {"distributed": distributed}
    if where == "fit":
        flags["sync_batch_norm"] = sync_batch_norm
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"{where}: {key} must be a bool. Received: {key}={flag!r}.")
    if strategy is not None:
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"{where}: strategy must be a deltanet.train.strategy.Strategy. "
                f"Received: {type(strategy).__name__}."
            )
        if distributed or sync_batch_norm:
            raise ValueError(
                f"{where}: pass either strategy or distributed/sync_batch_norm, not both "
                "(they are its short forms)."
            )
        return strategy
    if sync_batch_norm and not distributed:
        raise ValueError(f"{where}: sync_batch_norm=True needs distributed=True.")
    if not distributed:
        return LocalStrategy()
    from deltanet.distributed.strategy import MPIStrategy

    return MPIStrategy(sync_batch_norm=sync_batch_norm)
