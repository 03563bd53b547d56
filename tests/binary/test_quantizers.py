"""binary/quantizers.py: forward against naive loops, STE backward against central differences
of the surrogate each one follows, and PyTorch with the usual detach() trick."""

import numpy as np
import pytest

from deltanet.binary.quantizers import (
    approx_sign_backward,
    approx_sign_forward,
    quantize_act_backward,
    quantize_act_forward,
    quantize_weight_backward,
    quantize_weight_forward,
    sign_backward,
    sign_forward,
    weight_scale,
)
from tests.utils import check_grads, torch_or_skip


def away_from(points, rng, shape, margin=0.05):
    """Uniform samples in [-1.6, 1.6] with none within ``margin`` of a kink in ``points``."""
    x = rng.uniform(-1.6, 1.6, shape)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.sign(x[near] - p + 1e-12) * margin * 2
    return x


def test_sign_forward_is_plus_one_at_zero_and_keeps_dtype():
    x = np.array([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0], np.float32)
    y, _ = sign_forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [-1, 1, 1, 1, -1, 1])


def test_sign_backward_is_the_ste_naive_loop():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (5, 7))
    dy = rng.standard_normal(x.shape)
    for clip in (1.0, 0.5):
        (dx,) = sign_backward(dy, sign_forward(x, clip)[1])
        expected = np.zeros_like(dy)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                expected[i, j] = dy[i, j] if abs(x[i, j]) <= clip else 0.0
        np.testing.assert_array_equal(dx, expected)


def test_sign_ste_matches_hardtanh_gradient():
    rng = np.random.default_rng(1)
    x = away_from((-1, 1), rng, (4, 6))

    def forward(r):
        y = np.clip(x, -1, 1)  # the surrogate of sign whose derivative is the STE
        return y, None if r is None else [sign_backward(r, sign_forward(x)[1])[0]]

    check_grads(forward, [x])


def test_approx_sign_backward_matches_its_surrogate():
    rng = np.random.default_rng(2)
    x = away_from((-1, 0, 1), rng, (3, 8))
    y, _ = approx_sign_forward(x)
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))

    def forward(r):
        c = np.clip(x, -1, 1)
        y = 2 * c - c * np.abs(c)
        return y, None if r is None else [approx_sign_backward(r, approx_sign_forward(x)[1])[0]]

    check_grads(forward, [x])


@pytest.mark.parametrize("bits", [2, 3, 8])
def test_quantize_act_k_bits_naive_loop_and_ste(bits):
    rng = np.random.default_rng(bits)
    x = away_from((0, 1), rng, (20,))
    y, cache = quantize_act_forward(x, bits)
    n = 2**bits - 1
    for xi, yi in zip(x, y):
        assert yi == round(min(max(xi, 0.0), 1.0) * n) / n
    assert len(np.unique(y)) <= n + 1

    def forward(r):
        return np.clip(x, 0, 1), None if r is None else [quantize_act_backward(r, cache)[0]]

    check_grads(forward, [x])


def test_quantize_act_one_and_32_bits():
    x = np.array([-0.5, 0.0, 0.3], np.float32)
    np.testing.assert_array_equal(quantize_act_forward(x, 1)[0], [-1, 1, 1])
    y, cache = quantize_act_forward(x, 32)
    assert y is x and quantize_act_backward(x, cache)[0] is x


@pytest.mark.parametrize("scaling", ["none", "layer", "channel"])
def test_binary_weight_scaling_naive_loop_and_ste(scaling):
    rng = np.random.default_rng(3)
    w = away_from((-1, 0, 1), rng, (4, 3, 2))
    wq, cache = quantize_weight_forward(w, 1, scaling)
    for o in range(4):
        if scaling == "none":
            alpha = 1.0
        elif scaling == "layer":
            alpha = sum(abs(v) for v in w.ravel()) / w.size
        else:
            alpha = sum(abs(v) for v in w[o].ravel()) / w[o].size
        for idx in np.ndindex(w.shape[1:]):
            s = 1.0 if w[(o, *idx)] >= 0 else -1.0
            assert wq[(o, *idx)] == pytest.approx(alpha * s, rel=1e-12)
    alpha = weight_scale(w, scaling)  # a constant for the gradient, as BMXNet

    def forward(r):
        y = alpha * np.clip(w, -1, 1)
        return y, None if r is None else [quantize_weight_backward(r, cache)[0]]

    check_grads(forward, [w])


@pytest.mark.parametrize("bits", [2, 4])
def test_dorefa_weights_forward_and_surrogate_gradient(bits):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal((3, 5))
    wq, cache = quantize_weight_forward(w, bits, "none")
    n = 2**bits - 1
    m = max(abs(np.tanh(v)) for v in w.ravel())
    for idx in np.ndindex(w.shape):
        q = round((np.tanh(w[idx]) / (2 * m) + 0.5) * n) / n
        assert wq[idx] == pytest.approx(2 * q - 1, abs=1e-12)
    assert np.abs(wq).max() <= 1

    def forward(r):  # the surrogate 2 (t / 2M + 1/2) - 1 = tanh(w) / max|tanh(w)|
        t = np.tanh(w)
        y = t / np.max(np.abs(t))
        return y, None if r is None else [quantize_weight_backward(r, cache)[0]]

    check_grads(forward, [w])


def test_bits_out_of_range_are_refused():
    x = np.zeros(3)
    for bad in (0, 33, 1.5, True):
        with pytest.raises(ValueError, match="bits must be an int from 1 to 32"):
            quantize_act_forward(x, bad)
        with pytest.raises(ValueError, match="bits must be an int from 1 to 32"):
            quantize_weight_forward(x[None], bad, "none")
    with pytest.raises(ValueError, match="scaling must be one of"):
        weight_scale(x[None], "max")


def test_torch_parity_of_ste_quantizers():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x = away_from((-1, 0, 1), rng, (6, 7))
    w = rng.standard_normal((6, 7))
    dy = rng.standard_normal((6, 7))
    xt = torch.tensor(x, requires_grad=True)
    # sign with STE: forward sign, backward hardtanh
    ht = torch.nn.functional.hardtanh(xt)
    yt = ht + (torch.where(xt >= 0, 1.0, -1.0).double() - ht).detach()
    yt.backward(torch.tensor(dy))
    y, cache = sign_forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(sign_backward(dy, cache)[0], xt.grad.numpy())
    # DoReFa 3-bit weights
    wt = torch.tensor(w, requires_grad=True)
    t = torch.tanh(wt)
    s = t / (2 * t.abs().max()) + 0.5
    q = s + (torch.round(s * 7) / 7 - s).detach()
    (2 * q - 1).backward(torch.tensor(dy))
    wq, cache = quantize_weight_forward(w, 3, "none")
    np.testing.assert_allclose(wq, (2 * q - 1).detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(quantize_weight_backward(dy, cache)[0], wt.grad.numpy(), 1e-10)
