"""Data-parallel training over MPI: every rank holds the whole model and a shard of each batch.

Launch with ``mpiexec -n N python script.py`` (or ``mpiexec -n N deltanet train --distributed``);
``fit(..., distributed=True)`` is the short form of ``fit(..., strategy=MPIStrategy())``.
mpi4py is imported lazily (``pip install "deltanet[mpi]"``): without it ``rank()`` is 0,
``world_size()`` is 1, and the functions here act on one process.

- ``mpi``: the collectives, each aborting the job after ``DELTANET_MPI_TIMEOUT`` seconds
  instead of hanging, and the fingerprints that the ranks compare before training;
- ``model``: a model's weights, gradients and buffers across the ranks;
- ``strategy``: ``MPIStrategy``, the fit loop's hooks for MPI;
- ``sync_batch_norm``: ``SyncBatchNorm`` and ``convert_sync_batch_norm``.
"""

from deltanet.distributed.model import (
    allreduce_gradients,
    architecture,
    average_buffers,
    broadcast_parameters,
)
from deltanet.distributed.mpi import (
    DEFAULT_TIMEOUT,
    TIMEOUT_ENV,
    abort,
    allreduce_many,
    allreduce_sum,
    available,
    broadcast_array,
    broadcast_text,
    check_consistent,
    fingerprint_array,
    rank,
    require,
    shard,
    timeout,
    world_size,
)
from deltanet.distributed.strategy import MPIStrategy
from deltanet.distributed.sync_batch_norm import (
    SyncBatchNorm,
    convert_sync_batch_norm,
    revert_sync_batch_norm,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MPIStrategy",
    "SyncBatchNorm",
    "TIMEOUT_ENV",
    "abort",
    "allreduce_gradients",
    "allreduce_many",
    "allreduce_sum",
    "architecture",
    "available",
    "average_buffers",
    "broadcast_array",
    "broadcast_parameters",
    "broadcast_text",
    "check_consistent",
    "convert_sync_batch_norm",
    "fingerprint_array",
    "rank",
    "require",
    "revert_sync_batch_norm",
    "shard",
    "timeout",
    "world_size",
]
