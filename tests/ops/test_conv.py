"""The reference conv / conv_transpose ops: naive loops, central differences and PyTorch, in 1D,
2D and 3D. ``tests/fast/test_conv.py`` compares the fast paths with these."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deltanet.ops.conv import (
    ConvPath,
    conv_backward,
    conv_forward,
    conv_transpose_backward,
    conv_transpose_forward,
)
from deltanet.ops.window import as_tuple, resolve_padding
from tests.utils import check_grads, torch_or_skip

# x shape, w shape, stride, padding, dilation, groups, bias
CONV_CASES = [
    pytest.param((2, 3, 9), (4, 3, 3), 1, 0, 1, 1, True, id="1d-basic"),
    pytest.param((1, 4, 11), (4, 2, 4), 3, "same", 2, 2, False, id="1d-s3-same-d2-g2-n1-nobias"),
    pytest.param((2, 4, 10), (8, 1, 3), 2, [(2, 1)], 1, 4, True, id="1d-s2-asym-depthwise-x2"),
    pytest.param((2, 3, 7, 6), (5, 3, 3, 2), (2, 1), 1, 1, 1, True, id="2d-s21-p1"),
    pytest.param((1, 4, 9, 8), (6, 2, 3, 3), 3, ((1, 0), (2, 1)), 2, 2, True, id="2d-s3-asym-d2"),
    pytest.param((2, 3, 7, 7), (3, 1, 3, 3), 1, "same", (1, 2), 3, False, id="2d-same-depthwise"),
    pytest.param((2, 2, 5, 6, 5), (4, 2, 3, 2, 3), 2, (1, 0, 1), 1, 1, True, id="3d-s2-p101"),
    pytest.param((1, 4, 6, 5, 7), (4, 1, 2, 3, 2), (1, 2, 3), "same", 2, 4, True, id="3d-same-dw"),
    pytest.param((1, 2, 5, 4, 4), (4, 1, 3, 3, 3), 1, ((0, 1), (1, 0), (2, 2)), 1, 2, False,
                 id="3d-asym-g2-nobias"),
]  # fmt: skip

# x shape, w shape, stride, padding, output_padding, dilation, groups, bias
TRANSPOSE_CASES = [
    pytest.param((2, 3, 5), (3, 4, 3), 1, 0, 0, 1, 1, True, id="1d-basic"),
    pytest.param((1, 4, 6), (4, 3, 3), 2, 1, 1, 1, 2, False, id="1d-s2-p1-op1-g2-n1-nobias"),
    pytest.param((2, 2, 5), (2, 3, 2), 1, 0, 1, 2, 1, True, id="1d-op-below-dilation"),
    pytest.param((2, 3, 4, 5), (3, 2, 3, 3), 2, 1, 1, 1, 3, True, id="2d-s2-op1-depthwise-x2"),
    pytest.param((1, 4, 3, 4), (4, 1, 2, 3), (3, 2), (1, 0), (2, 1), (2, 1), 2, True,
                 id="2d-s32-d2-g2"),
    pytest.param((1, 2, 3, 3, 2), (2, 3, 2, 2, 3), 2, (0, 1, 1), (1, 0, 1), 1, 1, True,
                 id="3d-s2-op101"),
    pytest.param((2, 2, 3, 2, 3), (2, 1, 3, 2, 2), (1, 2, 1), 1, 0, 2, 2, False,
                 id="3d-depthwise-d2-nobias"),
]  # fmt: skip


def make(x_shape, w_shape, bias_size, dtype=np.float64, seed=0):
    """Random x, w and b (None when ``bias_size`` is None)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    return x, w, None if bias_size is None else rng.standard_normal(bias_size).astype(dtype)


def assert_close(actual, expected, tol, name=""):
    """Equal up to ``tol`` relative to the largest entry of ``expected`` (and elementwise)."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=name)


# --- naive references: explicit loops over every index ---------------------------------------


def naive_conv(x, w, b, stride, pads, dilation, groups, dy):
    """y, dx, dw, db of a grouped cross-correlation, one multiply-add at a time."""
    nd = w.ndim - 2
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    c_out, cg, kernel = w.shape[0], w.shape[1], w.shape[2:]
    out = tuple(
        (xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)
    )
    y = np.zeros((x.shape[0], c_out, *out))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(x.shape[0]):
        for o in range(c_out):
            g = o // (c_out // groups)
            for p in itertools.product(*map(range, out)):
                acc = b[o] if b is not None else 0.0
                for c in range(cg):
                    for k in itertools.product(*map(range, kernel)):
                        i = (
                            n,
                            g * cg + c,
                            *(pi * s + ki * d for pi, ki, s, d in zip(p, k, stride, dilation)),
                        )
                        acc += xp[i] * w[(o, c, *k)]
                        dxp[i] += dy[(n, o, *p)] * w[(o, c, *k)]
                        dw[(o, c, *k)] += dy[(n, o, *p)] * xp[i]
                y[(n, o, *p)] = acc
    dx = dxp[
        (slice(None), slice(None), *(slice(lo, lo + s) for (lo, _), s in zip(pads, x.shape[2:])))
    ]
    db = dy.sum(axis=(0, *range(2, dy.ndim))) if b is not None else None
    return y, dx, dw, db  # fmt: skip


def naive_conv_transpose(x, w, b, stride, padding, output_padding, dilation, groups):
    """Each input cell scatters ``x * w`` onto the output, then ``padding`` is cropped."""
    nd = w.ndim - 2
    c_in, cog, kernel = w.shape[0], w.shape[1], w.shape[2:]
    full = tuple(
        (x.shape[2 + i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i]
        for i in range(nd)
    )
    y = np.zeros((x.shape[0], cog * groups, *full))
    for n in range(x.shape[0]):
        for ci in range(c_in):
            g = ci // (c_in // groups)
            for p in itertools.product(*map(range, x.shape[2:])):
                for co in range(cog):
                    for k in itertools.product(*map(range, kernel)):
                        i = tuple(pi * s + ki * d for pi, ki, s, d in zip(p, k, stride, dilation))
                        y[(n, g * cog + co, *i)] += x[(n, ci, *p)] * w[(ci, co, *k)]
    y = y[(slice(None), slice(None), *(slice(p, f - p) for p, f in zip(padding, full)))]
    return y + b.reshape(-1, *(1,) * nd) if b is not None else y


def _hyper(w, stride, dilation, padding=0, output_padding=0):
    nd = w.ndim - 2
    return tuple(as_tuple(v, nd) for v in (stride, dilation, padding, output_padding))


# --- convolution ------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups, bias", CONV_CASES)
def test_conv_matches_naive_loops(x_shape, w_shape, stride, padding, dilation, groups, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    y, cache = conv_forward(x, w, b, stride, padding, dilation, groups)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    s, d, _, _ = _hyper(w, stride, dilation)
    pads = resolve_padding(padding, x.shape[2:], w.shape[2:], s, d)
    ref = naive_conv(x, w, b, s, pads, d, groups, dy)
    got = (y, *conv_backward(dy, cache))
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        assert (a is None) == (e is None), name
        if e is not None:
            assert_close(a, e, 1e-12, name)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups, bias", CONV_CASES)
def test_conv_gradcheck(x_shape, w_shape, stride, padding, dilation, groups, bias):
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None)
    inputs = [x, w] + ([b] if bias else [])

    def forward(r):
        y, cache = conv_forward(x, w, b, stride, padding, dilation, groups)
        if r is None:
            return y, None
        dx, dw, db = conv_backward(r, cache)
        return y, [dx, dw] + ([db] if bias else [])

    check_grads(forward, inputs)


def torch_conv(torch, x, w, b, dy, stride, pads, dilation, groups):
    """y, dx, dw, db from torch; asymmetric padding by F.pad first (last axis first)."""
    f = torch.nn.functional
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    xp = f.pad(xt, [p for pair in reversed(pads) for p in pair])
    conv = {1: f.conv1d, 2: f.conv2d, 3: f.conv3d}[w.ndim - 2]
    yt = conv(xp, wt, bt, stride=stride, dilation=dilation, groups=groups)
    yt.backward(torch.tensor(dy))
    grads = (xt.grad, wt.grad, bt.grad if bt is not None else None)
    return (yt.detach().numpy(), *(g.numpy() if g is not None else None for g in grads))


@pytest.mark.parametrize(
    "dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups, bias", CONV_CASES)
def test_conv_matches_torch(x_shape, w_shape, stride, padding, dilation, groups, bias, dtype, tol):
    torch = torch_or_skip()
    x, w, b = make(x_shape, w_shape, w_shape[0] if bias else None, dtype)
    y, cache = conv_forward(x, w, b, stride, padding, dilation, groups)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    s, d, _, _ = _hyper(w, stride, dilation)
    pads = resolve_padding(padding, x.shape[2:], w.shape[2:], s, d)
    ref = torch_conv(torch, x, w, b, dy, s, pads, d, groups)
    got = (y, *conv_backward(dy, cache))
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        if e is not None:
            assert a.dtype == dtype, name
            assert_close(a, e, tol, name)


@pytest.mark.parametrize("padding", [0, "same", ((2, 0), (1, 1))], ids=["p0", "same", "asym"])
@pytest.mark.parametrize("groups", [1, 2], ids=["g1", "g2"])
def test_conv_keeps_float32(padding, groups):
    x, w, b = make((2, 4, 6, 5), (4, 4 // groups, 3, 2), 4, np.float32)
    y, cache = conv_forward(x, w, b, 2, padding, 1, groups)
    grads = conv_backward(np.ones_like(y), cache)
    assert [a.dtype for a in (y, *grads)] == [np.float32] * 4


def test_conv_kernel_larger_than_padded_input():
    x, w, _ = make((1, 2, 4, 4), (3, 2, 3, 6), None)
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input.*\(4, 4\)"):
        conv_forward(x, w, padding=((0, 0), (1, 0)))
    conv_forward(x, w, padding=((0, 0), (1, 1)))  # exactly fits: out = 1
    with pytest.raises(ValueError, match=r"dilated kernel size \(5, 11\)"):
        conv_forward(x, w, padding=3, dilation=2)


def test_conv_cache_is_named_and_the_reference_takes_only_its_own_path():
    x, w, b = make((2, 3, 6, 5), (4, 3, 3, 2), 4)
    y, cache = conv_forward(x, w, b, 1, 1)
    assert cache.path is ConvPath.GEMM and cache.window.out == y.shape[2:] and cache.has_bias
    assert cache.padded_shape == (2, 3, 8, 7) and cache.saved.shape == (1, 3 * 3 * 2, 2 * 6 * 6)
    with pytest.raises(ValueError, match="chunked path of deltanet.fast.conv.conv_forward"):
        conv_backward(np.ones_like(y), cache._replace(path=ConvPath.CHUNKED))


# --- transposed convolution -------------------------------------------------------------------

T_ARGS = "x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias"


@pytest.mark.parametrize(T_ARGS, TRANSPOSE_CASES)
def test_conv_transpose_matches_naive_loops(
    x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[1] * groups if bias else None)
    y, _ = conv_transpose_forward(x, w, b, stride, padding, output_padding, dilation, groups)
    s, d, p, op = _hyper(w, stride, dilation, padding, output_padding)
    assert_close(y, naive_conv_transpose(x, w, b, s, p, op, d, groups), 1e-12)


@pytest.mark.parametrize(T_ARGS, TRANSPOSE_CASES)
def test_conv_transpose_gradcheck(
    x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias
):
    x, w, b = make(x_shape, w_shape, w_shape[1] * groups if bias else None)
    inputs = [x, w] + ([b] if bias else [])

    def forward(r):
        y, cache = conv_transpose_forward(
            x, w, b, stride, padding, output_padding, dilation, groups
        )
        if r is None:
            return y, None
        dx, dw, db = conv_transpose_backward(r, cache)
        return y, [dx, dw] + ([db] if bias else [])

    check_grads(forward, inputs)


@pytest.mark.parametrize(
    "dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["f64", "f32"]
)
@pytest.mark.parametrize(T_ARGS, TRANSPOSE_CASES)
def test_conv_transpose_matches_torch(
    x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias, dtype, tol
):
    torch = torch_or_skip()
    f = torch.nn.functional
    x, w, b = make(x_shape, w_shape, w_shape[1] * groups if bias else None, dtype)
    hyper = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    y, cache = conv_transpose_forward(x, w, b, groups=groups, **hyper)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    conv_t = {1: f.conv_transpose1d, 2: f.conv_transpose2d, 3: f.conv_transpose3d}[w.ndim - 2]
    yt = conv_t(xt, wt, bt, groups=groups, **hyper)
    yt.backward(torch.tensor(dy))
    got = (y, *conv_transpose_backward(dy, cache))
    ref = (yt.detach(), xt.grad, wt.grad, bt.grad if bias else None)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, ref):
        assert (a is None) == (e is None), name
        if e is not None:
            assert a.dtype == dtype, name
            assert_close(a, e.numpy(), tol, name)


@pytest.mark.parametrize(T_ARGS, TRANSPOSE_CASES[:4])
def test_conv_transpose_is_the_adjoint_of_conv(
    x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias
):
    """<conv(u), x> == <u, conv_transpose(x)> for the same weight.

    With output_padding >= stride (allowed below dilation) the conv has more windows than x has
    cells; the transpose is the adjoint of the conv restricted to the first ones.
    """
    x, w, _ = make(x_shape, w_shape, None)
    yt, _ = conv_transpose_forward(x, w, None, stride, padding, output_padding, dilation, groups)
    u = np.random.default_rng(2).standard_normal(yt.shape)
    yc, _ = conv_forward(u, w, None, stride, padding, dilation, groups)
    yc = yc[tuple(slice(0, n) for n in x.shape)]
    assert yc.shape == x.shape
    assert np.isclose(np.sum(yc * x), np.sum(u * yt), rtol=1e-12)


def test_conv_transpose_keeps_float32():
    x, w, b = make((2, 4, 3, 5), (4, 3, 3, 2), 6, np.float32)
    y, cache = conv_transpose_forward(x, w, b, stride=2, padding=1, output_padding=1, groups=2)
    grads = conv_transpose_backward(np.ones_like(y), cache)
    assert [a.dtype for a in (y, *grads)] == [np.float32] * 4


def test_conv_transpose_bad_output_padding_and_empty_output():
    x, w, _ = make((1, 2, 4), (2, 3, 3), None)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or dilation"):
        conv_transpose_forward(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"output would be empty.*= \(0,\)"):
        conv_transpose_forward(x, w, padding=3)
