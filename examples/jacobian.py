"""Jacobians by backpropagation, checked against finite differences.

``deltanet.jacobian(model, x)`` gives ``∂ outputs / ∂ inputs`` with one backward pass per output
unit (backprop computes ``δyᵀ J``; ``δy = e_j`` picks row ``j``). This script checks it on a
tanh MLP and on a small conv-pool network against central differences, one forward pass per
input element, and draws the Jacobian of a digit classifier's class scores w.r.t. its pixels.

    python examples/jacobian.py [--out examples/figures]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import deltanet as dn
from deltanet.jacobian import jacobian


def finite_difference_jacobian(model: dn.Layer, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(f(x + ε e_i) - f(x - ε e_i)) / 2ε`` for each input element: (N, *out, *in)."""
    n, in_shape = x.shape[0], x.shape[1:]
    out_shape = model(x).shape[1:]
    jac = np.zeros((n, int(np.prod(out_shape)), int(np.prod(in_shape))))
    flat = x.reshape(n, -1)
    for i in range(flat.shape[1]):  # every example at once: they do not interact
        old = flat[:, i].copy()
        flat[:, i] = old + eps
        plus = model(x).reshape(n, -1)
        flat[:, i] = old - eps
        minus = model(x).reshape(n, -1)
        flat[:, i] = old
        jac[:, :, i] = (plus - minus) / (2 * eps)
    return jac.reshape(n, *out_shape, *in_shape)


def models(seed: int = 0) -> dict[str, tuple[dn.Layer, np.ndarray]]:
    """Two float64 networks and an input batch for each."""
    rng = np.random.default_rng(seed)
    f64 = {"rng": rng, "dtype": np.float64}
    mlp = dn.Sequential(dn.Dense(5, 7, **f64), dn.Tanh(), dn.Dense(7, 3, **f64), dn.Softmax())
    cnn = dn.Sequential(
        dn.Conv2D(2, 3, 3, padding=1, **f64),
        dn.Sigmoid(),
        dn.AvgPool2D(2),
        dn.Flatten(),
        dn.Dense(12, 4, **f64),
    )
    return {
        "tanh MLP 5-7-3 with softmax": (mlp, rng.standard_normal((3, 5))),
        "conv-sigmoid-meanpool-dense": (cnn, rng.standard_normal((2, 2, 4, 4))),
    }


def check(seed: int = 0) -> dict[str, float]:
    """Max relative error of backprop Jacobians against finite differences, per model."""
    errors = {}
    for name, (model, x) in models(seed).items():
        jac, num = jacobian(model, x), finite_difference_jacobian(model, x)
        errors[name] = float(np.max(np.abs(jac - num)) / np.max(np.abs(num)))
    return errors


def digit_saliency(out: Path, maxiter: int = 50) -> Path:
    """Train a 64-25-10 network (CG, ``maxiter`` iterations); draw ∂ score_k / ∂ pixels.

    The figure shows one test digit and, per class k, how its score moves with each pixel.
    """
    from deltanet.data import load_dataset
    from deltanet.evaluation import LOSSES

    ds = load_dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float64)
    rng = np.random.default_rng(0)
    model = dn.Sequential(
        dn.Dense(64, 25, rng=rng, dtype=np.float64),
        dn.Sigmoid(),
        dn.Dense(25, 10, rng=rng, dtype=np.float64),
    )
    dn.minimize(model, LOSSES["sigmoid_cross_entropy"], x, ds.y_train, maxiter=maxiter, l2=1.0)
    digit = ds.x_test[:1].reshape(1, 64).astype(np.float64)
    jac = jacobian(model, digit)[0]  # (10, 64): one row per class score
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 11, figsize=(13, 1.7))
    axes[0].imshow(digit.reshape(8, 8), cmap="gray_r")
    axes[0].set_title(f"digit {ds.y_test[0]}")
    lim = np.abs(jac).max()
    for k, ax in enumerate(axes[1:]):
        ax.imshow(jac[k].reshape(8, 8), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"∂z{k}/∂x")
    for ax in axes:
        ax.axis("off")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="examples/figures")
    args = parser.parse_args()
    for name, err in check().items():
        print(f"{name}: backprop vs finite differences, max relative error {err:.2e}")
    print("figure:", digit_saliency(Path(args.out) / "jacobian_digit.png"))


if __name__ == "__main__":
    main()
