"""Helpers shared by the tests: torch (skipped cleanly without it) and numerical gradients."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.gradcheck import numerical_gradient


def torch_or_skip():
    """``torch`` in float64-friendly CPU mode, or skip the test when it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def check_grads(forward, inputs, dy_seed=0, rtol=1e-6, atol=1e-8, eps=1e-6):
    """Check analytic gradients against central differences for a float64 computation.

    ``forward()`` returns ``(y, grads)`` where ``grads`` lists ``dL/d input`` for each array in
    ``inputs`` under the loss ``L = sum(y * r)`` with a fixed random ``r``; ``forward`` must read
    the arrays of ``inputs`` (they are perturbed in place).
    """
    y, _ = forward(None)
    r = np.random.default_rng(dy_seed).standard_normal(y.shape)
    _, grads = forward(r)
    for i, (x, g) in enumerate(zip(inputs, grads, strict=True)):
        num = numerical_gradient(lambda: float(np.sum(forward(None)[0] * r)), x, eps)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def check_layer_grads(layer, x, **tolerances):
    """``check_grads`` for one layer: δx and every parameter's gradient under ``sum(y * r)``."""
    params = layer.parameters()

    def forward(r):
        y = layer(x)
        if r is None:
            return y, None
        layer.zero_grad()
        dx = layer.backward(r)
        return y, [dx] + [p.grad.copy() for p in params]

    check_grads(forward, [x] + [p.data for p in params], **tolerances)
