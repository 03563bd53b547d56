"""SyncBatchNorm: the math across ranks (two threads stand in for two ranks), the layer, and
its conversion anywhere in a model's tree."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from deltanet import io
from deltanet.distributed import (
    SyncBatchNorm,
    convert_sync_batch_norm,
    revert_sync_batch_norm,
)
from deltanet.distributed.sync_batch_norm import sync_batch_norm_backward, sync_batch_norm_forward
from deltanet.layers import BatchNorm1D, BatchNorm2D, Dense, Sequential
from deltanet.ops.norm import batch_norm_backward, batch_norm_forward
from deltanet.optim import SGD
from tests.train.common import images, residual_net
from tests.utils import check_grads, torch_or_skip


def _identity(a):
    return a


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
        return ys, sync_batch_norm_backward(dys, c, allreduce)

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
        y, cache = sync_batch_norm_forward(x, gamma, beta, 1e-5, _identity)
        return y, (None if dy is None else sync_batch_norm_backward(dy, cache, _identity))

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


def test_sync_layer_tracks_global_running_statistics():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)

    def layer_pass(xs, allreduce):
        layer = SyncBatchNorm.from_batch_norm(BatchNorm2D(3), allreduce)
        layer(xs)
        return layer.running_mean.copy(), layer.running_var.copy()

    whole = BatchNorm2D(3)
    whole(x)
    for mean, var in _threads_as_ranks(layer_pass, [x[:2], x[2:]]):
        np.testing.assert_allclose(mean, whole.running_mean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(var, whole.running_var, rtol=1e-5, atol=1e-7)


# --- convert_sync_batch_norm ---------------------------------------------------------------------


def test_conversion_reaches_batch_norm_inside_a_residual_and_reverts_to_the_same_layers():
    model = residual_net()
    model.eval()
    block = model[1].block
    bn = block.bn
    names = [name for name, _ in model.named_layers()]
    params = model.parameters()
    assert convert_sync_batch_norm(model, _identity) is model
    sync = block.bn
    assert isinstance(sync, SyncBatchNorm) and sync.allreduce is _identity
    assert dict(model.named_layers())["1.block.bn"] is sync
    assert [name for name, _ in model.named_layers()] == names  # same names, same order
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]  # shared Parameters
    assert not sync.training  # the mode came along
    assert convert_sync_batch_norm(model) is model and block.bn is sync  # converted once
    sync.train()
    x, _ = images(8)
    sync(block.conv(model[0](x)))
    assert revert_sync_batch_norm(model) is model
    assert block.bn is bn and type(bn) is BatchNorm2D  # the user's own layer, updated:
    assert bn.training and bn.num_batches_tracked == 1
    np.testing.assert_array_equal(bn.running_mean, sync.running_mean)
    assert [name for name, _ in model.named_layers()] == names


def test_a_synchronised_layer_computes_what_batch_norm_computes_on_one_process():
    x, y = images(16)
    plain, synced = residual_net(p=0.0), convert_sync_batch_norm(residual_net(p=0.0), _identity)
    for net in (plain, synced):
        logits = net(x)
        net.backward(logits - 1)  # any δ
    np.testing.assert_allclose(synced(x), plain(x), rtol=1e-5, atol=1e-6)
    for a, b in zip(synced.parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    for (ka, a), (kb, b) in zip(synced.named_buffers(), plain.named_buffers(), strict=True):
        assert ka == kb
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_conversion_of_attributes_keeps_the_children_order():
    model = residual_net()
    block = model[1].block
    assert [k for k, _ in block.named_children()] == ["conv", "bn", "relu", "drop"]
    convert_sync_batch_norm(model)
    assert [k for k, _ in block.named_children()] == ["conv", "bn", "relu", "drop"]
    assert block.bn is dict(block.named_children())["bn"]


def test_a_batch_norm_model_and_an_optimizer_built_before_the_conversion():
    bn = BatchNorm1D(3)
    sync = convert_sync_batch_norm(bn)
    assert isinstance(sync, SyncBatchNorm) and revert_sync_batch_norm(sync) is bn
    net = Sequential(Dense(2, 3, rng=0), Sequential(BatchNorm1D(3), Dense(3, 2, rng=1)))
    optimizer = SGD(net, lr=0.1)
    inner = net[1][0]
    convert_sync_batch_norm(net, _identity)
    assert isinstance(net[1][0], SyncBatchNorm)
    net.zero_grad()
    y = net(np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32))
    net.backward(y, input_grad=False)
    optimizer.step()  # steps the Parameters the synchronised layer shares
    revert_sync_batch_norm(net)
    assert net[1][0] is inner and not np.array_equal(inner.weight.data, np.ones(3))


def test_a_synchronised_model_cannot_be_saved_until_reverted(tmp_path):
    model = convert_sync_batch_norm(residual_net())
    with pytest.raises(TypeError, match="SyncBatchNorm"):
        io.save(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    io.save(revert_sync_batch_norm(model), tmp_path / "m.safetensors")
    assert type(io.load(tmp_path / "m.safetensors")[1].block.bn) is BatchNorm2D
