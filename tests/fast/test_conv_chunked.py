"""The chunked path of convolution (``fast/conv_chunked.py``) and its compiled im2col / col2im.

The plan takes this path for ``groups == 1`` and large windows, which the cases of
``tests/ops/test_conv.py`` are too small to reach; here every case is forced onto it with chunks
of a few samples (so several chunks run, the last one short), and each is checked against the
naive loops, central differences, PyTorch and the reference's whole-batch GEMM, with the NumPy
window copies and with the numba kernels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deltanet.fast import plan
from deltanet.fast.conv import conv_backward, conv_forward
from deltanet.ops import conv as ref
from deltanet.ops.conv import ConvPath
from deltanet.ops.window import as_tuple, resolve_padding
from tests.ops.test_conv import assert_close, make, naive_conv
from tests.utils import check_grads, torch_or_skip

# x shape, w shape, stride, padding, dilation, bias
CASES = [
    pytest.param((5, 2, 70), (3, 2, 3), 1, 1, 1, True, id="1d-p1"),
    pytest.param((3, 1, 140), (2, 1, 4), 2, "same", 2, False, id="1d-s2-same-d2"),
    pytest.param((5, 2, 9, 9), (3, 2, 2, 2), 1, 0, 1, True, id="2d-valid"),
    pytest.param((3, 1, 12, 11), (2, 1, 5, 5), 1, 2, 1, True, id="2d-lenet-conv1"),
    pytest.param((3, 3, 17, 16), (2, 3, 3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), False,
                 id="2d-s21-asym-d12"),
    pytest.param((3, 2, 5, 5, 5), (2, 2, 3, 3, 3), 1, 1, 1, True, id="3d-p1"),
    pytest.param((3, 1, 9, 8, 10), (2, 1, 2, 3, 2), (2, 1, 2), "same", (1, 2, 1), True,
                 id="3d-s212-same"),
]  # fmt: skip


def _out(x, w, stride, padding, dilation):
    nd = w.ndim - 2
    s, d = as_tuple(stride, nd), as_tuple(dilation, nd)
    pads = resolve_padding(padding, x.shape[2:], w.shape[2:], s, d)
    return s, d, pads


def _path(monkeypatch, path):
    monkeypatch.setattr(plan, "conv_path", lambda *args: path)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Every case on the chunked path, in chunks of two or three samples."""
    _path(monkeypatch, ConvPath.CHUNKED)
    monkeypatch.setattr(plan, "THRESHOLDS", dataclasses.replace(plan.THRESHOLDS, chunk=2048))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", CASES)
def test_chunked_path_matches_naive_loops(
    engine, x_shape, w_shape, stride, padding, dilation, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    y, cache = conv_forward(x, w, b, stride, padding, dilation)
    assert cache.path is ConvPath.CHUNKED, "the case must take the chunked path"
    dy = np.random.default_rng(1).standard_normal(y.shape)
    s, d, pads = _out(x, w, stride, padding, dilation)
    ry, rdx, rdw, rdb = naive_conv(x, w, b, s, pads, d, 1, dy)
    dx, dw, db = conv_backward(dy, cache)
    for name, got, want in (("y", y, ry), ("dx", dx, rdx), ("dw", dw, rdw), ("db", db, rdb)):
        assert (got is None) == (want is None), name
        if want is not None:
            assert_close(got, want, 1e-10, name)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", CASES[::2])
def test_chunked_path_gradcheck(engine, x_shape, w_shape, stride, padding, dilation, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    inputs = [x, w] + ([b] if bias else [])

    def forward(dy):
        y, cache = conv_forward(x, w, b, stride, padding, dilation)
        if dy is None:
            return y, None
        dx, dw, db = conv_backward(dy, cache)
        return y, [dx, dw] + ([db] if bias else [])

    check_grads(forward, inputs)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", CASES)
def test_chunked_path_matches_torch(engine, x_shape, w_shape, stride, padding, dilation, bias):
    torch = torch_or_skip()
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None, dtype=np.float32)
    y, cache = conv_forward(x, w, b, stride, padding, dilation)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx, dw, db = conv_backward(dy, cache)
    s, d, pads = _out(x, w, stride, padding, dilation)
    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(w).requires_grad_(True)
    tb = torch.from_numpy(b).requires_grad_(True) if bias else None
    nd = w.ndim - 2
    flat = [p for pair in reversed(pads) for p in pair]
    txp = torch.nn.functional.pad(tx, flat)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)
    ty = conv[nd - 1](txp, tw, tb, s, 0, d)
    ty.backward(torch.from_numpy(dy))
    assert y.dtype == dx.dtype == dw.dtype == np.float32
    assert_close(y, ty.detach().numpy(), 1e-4, "y")
    assert_close(dx, tx.grad.numpy(), 1e-4, "dx")
    assert_close(dw, tw.grad.numpy(), 1e-4, "dw")
    if bias:
        assert_close(db, tb.grad.numpy(), 1e-4, "db")


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, bias", CASES)
def test_chunked_path_and_the_reference_agree(
    engine, x_shape, w_shape, stride, padding, dilation, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    y, cache = conv_forward(x, w, b, stride, padding, dilation)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    grads = conv_backward(dy, cache)
    y2, cache2 = ref.conv_forward(x, w, b, stride, padding, dilation)
    assert cache.path is ConvPath.CHUNKED and cache2.path is ConvPath.GEMM
    assert_close(y, y2, 1e-12, "y")
    for name, g, g2 in zip(("dx", "dw", "db"), grads, ref.conv_backward(dy, cache2)):
        if g2 is not None:
            assert_close(g, g2, 1e-12, name)


@pytest.mark.parametrize("path", [ConvPath.CHUNKED, ConvPath.GEMM], ids=["chunked", "gemm"])
def test_no_input_grad_skips_dx_only(monkeypatch, engine, path):
    _path(monkeypatch, path)
    x, w, b = make((2, 2, 9, 9), (3, 2, 3, 3), 3)
    y, cache = conv_forward(x, w, b, 1, 1)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    dx, dw, db = conv_backward(dy, cache)
    none, dw2, db2 = conv_backward(dy, cache, input_grad=False)
    assert dx is not None and none is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


def test_compiled_col2im_matches_numpy(monkeypatch):
    """The numba col2im against the NumPy slab loop, float32, with stride and dilation."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 13, 12)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    y, cache = conv_forward(x, w, None, (2, 1), ((2, 1), (0, 2)), (1, 2))
    assert cache.path is ConvPath.CHUNKED
    dy = rng.standard_normal(y.shape).astype(np.float32)
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    ref = conv_backward(dy, cache)
    monkeypatch.setenv("DELTANET_NUMBA", "1")
    got = conv_backward(dy, cache)
    for name, g, r in zip(("dx", "dw"), got, ref):
        assert g.dtype == np.float32, name
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=name)
