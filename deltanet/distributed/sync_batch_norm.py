"""Synchronised batch norm: the statistics of the batch spread over every rank.

In data-parallel training each rank sees a shard of the global batch. A plain ``BatchNormND``
normalises with its shard's statistics (as PyTorch's ``BatchNorm`` under DDP); ``SyncBatchNorm``
(as ``torch.nn.SyncBatchNorm`` and ChainerMN's ``MultiNodeBatchNormalization``) reduces them
over the ranks, so N ranks compute what one process computes on the whole batch, at the price
of three small allreduces per layer and step. ``convert_sync_batch_norm(model)`` puts one in
place of every batch-norm layer of the model's tree; ``revert_sync_batch_norm(model)`` brings
the model's own layers back (``fit(..., sync_batch_norm=True)`` does both around each epoch's
steps). A model holding a ``SyncBatchNorm`` cannot be saved: revert it first.

The ops take ``allreduce``, a callable that sums an array over the ranks in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from deltanet.distributed import mpi
from deltanet.layers.base import Layer
from deltanet.layers.norm import BatchNormND

Allreduce = Callable[[np.ndarray], Any]


class SyncBatchNormCache(NamedTuple):
    x_hat: np.ndarray  # (N, C, *spatial) the normalised input
    gamma: np.ndarray  # (C,)
    inv_std: np.ndarray  # (1, C, 1, ...) 1 / sqrt(var + eps)
    mean: np.ndarray  # (C,) of the global batch
    var: np.ndarray  # (C,) biased variance of the global batch
    m: int  # values per channel in the global batch


def sync_batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, allreduce: Allreduce
) -> tuple[np.ndarray, SyncBatchNormCache]:
    """Batch norm with the statistics of the batch spread over the ranks. x: (N, C, *spatial).

    Two passes, as in ``batch_norm_forward`` (no cancellation): the global sum and count give
    the mean, then the global sum of squared deviations the biased variance.
    """
    c, axes = x.shape[1], (0, *range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    sums = np.empty(c + 1)  # per channel, then the count
    sums[:c] = x.sum(axis=axes, dtype=np.float64)
    sums[c] = x.size // c
    allreduce(sums)
    m = int(sums[c])
    mean = (sums[:c] / max(m, 1)).astype(x.dtype)
    xc = x - mean.reshape(shape)
    squares = (xc * xc).sum(axis=axes, dtype=np.float64)
    allreduce(squares)
    var = (squares / max(m, 1)).astype(x.dtype)
    inv_std = (1 / np.sqrt(var + eps)).reshape(shape)
    x_hat = xc * inv_std
    gamma = gamma.astype(x.dtype, copy=False)
    y = x_hat * gamma.reshape(shape) + beta.astype(x.dtype, copy=False).reshape(shape)
    return y, SyncBatchNormCache(x_hat, gamma, inv_std, mean, var, m)


def sync_batch_norm_backward(
    dy: np.ndarray, cache: SyncBatchNormCache, allreduce: Allreduce
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``sync_batch_norm_forward``: (dx like x, dgamma (C,), dbeta (C,)) of this rank.

    ``dx = (gamma / sigma) * (dy - Dbeta / m - x_hat * Dgamma / m)`` as in
    ``batch_norm_backward``, where ``Dbeta``, ``Dgamma`` and ``m`` run over every rank's batch
    (the mean and variance depend on all of them); dgamma and dbeta stay this rank's sums,
    which the gradient allreduce adds up.
    """
    x_hat, gamma, inv_std, m = cache.x_hat, cache.gamma, cache.inv_std, cache.m
    c, axes = dy.shape[1], (0, *range(2, dy.ndim))
    shape = (1, c) + (1,) * (dy.ndim - 2)
    dbeta = dy.sum(axis=axes)
    dgamma = np.sum(dy * x_hat, axis=axes)
    total = np.concatenate([dbeta, dgamma]).astype(np.float64)
    allreduce(total)
    mean_dbeta, mean_dgamma = (total[:c] / m).astype(dy.dtype), (total[c:] / m).astype(dy.dtype)
    centred = dy - mean_dbeta.reshape(shape) - x_hat * mean_dgamma.reshape(shape)
    return centred * (gamma.reshape(shape) * inv_std), dgamma, dbeta


def _mpi_allreduce(a: np.ndarray) -> np.ndarray:
    return mpi.allreduce_sum(a, "sync batch norm")


class SyncBatchNorm(BatchNormND):
    """``BatchNormND`` whose training statistics are those of the batch over every rank.

    Input ``(N, C, *spatial)`` (any number of spatial axes). ``allreduce`` sums an array over
    the ranks in place (default: over ``MPI.COMM_WORLD``, with the collectives' timeout; one
    process without mpi4py: the identity). Eval mode, the running statistics and the
    parameters are those of ``BatchNormND``. Build one with ``convert_sync_batch_norm``.
    """

    # The layer this one stands in for (``from_batch_norm``): kept out of the layer tree.
    _replaced: BatchNormND | None = None

    def __init__(self, *args: Any, allreduce: Allreduce | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allreduce = _mpi_allreduce if allreduce is None else allreduce

    def _batch_stats_forward(self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray):
        y, cache = sync_batch_norm_forward(x, gamma, beta, self.eps, self.allreduce)
        self._check_values_per_channel(x, cache.m)
        var_unbiased = cache.var * (cache.m / (cache.m - 1))
        return y, cache, cache.mean, var_unbiased

    def _batch_stats_backward(self, dy: np.ndarray, cache: SyncBatchNormCache):
        return sync_batch_norm_backward(dy, cache, self.allreduce)

    @classmethod
    def from_batch_norm(cls, bn: BatchNormND, allreduce: Allreduce | None = None) -> SyncBatchNorm:
        """A SyncBatchNorm sharing ``bn``'s Parameters (an optimizer built on ``bn`` keeps
        stepping them), with its settings, running statistics and mode."""
        sync = cls(**bn.get_config(), allreduce=allreduce)
        for name, p in bn.named_parameters():
            setattr(sync, name, p)
        sync.load_buffers(bn.buffers())
        sync.training = bn.training
        object.__setattr__(sync, "_replaced", bn)
        return sync

    def to_batch_norm(self) -> BatchNormND:
        """The layer this one replaced (or a ``BatchNormND``), updated with this one's running
        statistics and mode; the Parameters are shared."""
        bn = self._replaced if self._replaced is not None else BatchNormND(**self.get_config())
        for name, p in self.named_parameters():
            setattr(bn, name, p)
        bn.load_buffers(self.buffers())
        bn.training = self.training
        return bn


def convert_sync_batch_norm(model: Layer, allreduce: Allreduce | None = None) -> Layer:
    """Replace every ``BatchNormND`` in ``model``'s tree (in any container or custom layer) by a
    ``SyncBatchNorm`` with its Parameters, running statistics and mode; returns the model
    (a new layer if ``model`` is itself a batch norm)."""
    return _replace(model, _to_sync(allreduce))


def revert_sync_batch_norm(model: Layer) -> Layer:
    """Undo ``convert_sync_batch_norm``: every ``SyncBatchNorm`` gives way to the layer it
    replaced, updated with its running statistics and mode; returns the model."""
    return _replace(model, _to_batch_norm)


def _to_batch_norm(layer: Layer) -> Layer | None:
    return layer.to_batch_norm() if isinstance(layer, SyncBatchNorm) else None


def _to_sync(allreduce: Allreduce | None) -> Callable[[Layer], Layer | None]:
    def convert(layer: Layer) -> Layer | None:
        if isinstance(layer, BatchNormND) and not isinstance(layer, SyncBatchNorm):
            return SyncBatchNorm.from_batch_norm(layer, allreduce)
        return None

    return convert


def _replace(model: Layer, new_for: Callable[[Layer], Layer | None]) -> Layer:
    """Walk the tree and put ``new_for(layer)`` in place of each layer for which it is not None
    (the model itself included; a layer held twice gets one replacement); returns the model."""
    memo: dict[int, Layer | None] = {}

    def replacement(layer: Layer) -> Layer | None:
        if id(layer) not in memo:
            memo[id(layer)] = new_for(layer)
        return memo[id(layer)]

    top = replacement(model)
    if top is not None:
        return top
    for parent in model.layers_tree():
        kids = list(parent.named_children())
        changed = {name: new for name, child in kids if (new := replacement(child)) is not None}
        if changed:
            _set_children(parent, kids, changed)
    return model


def _set_children(parent: Layer, kids: list[tuple[str, Layer]], new: dict[str, Layer]) -> None:
    """Give ``parent`` the children ``new`` by name; a replaced child keeps its place."""
    for name, child in kids:
        if name not in new:
            continue
        if getattr(parent, name, None) is child:
            setattr(parent, name, new[name])
        else:  # a numbered child (Sequential, LayerList)
            parent.add_layer(name, new[name])
