"""The classic 400-25-10 digit network: sigmoid MLP, one-vs-all cost, λ, CG for 50 iterations.

On scikit-learn's 8x8 digits the network is 64-25-10; with the MNIST files present (``--mnist
DIR``) it is the original 400-25-10 on MNIST cropped to the 20x20 box the digits are drawn in.
Reproduces: the sigmoid gradient at [-1, -0.5, 0, 0.5, 1], the gradient check of the 3-5-3
debug network (relative difference below 1e-9), the training accuracy after 50 CG iterations,
and a picture of the 25 hidden units.

    python examples/digits_400_25_10.py [--mnist DIR] [--lambda 1] [--out examples/figures]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import deltanet as dn
from deltanet.evaluation import LOSSES
from deltanet.init import epsilon_uniform

ONE_VS_ALL = LOSSES["sigmoid_cross_entropy"]  # J = (1/m) Σ_i Σ_k [-y log h - (1-y) log(1-h)]


def sigmoid_gradient_table() -> np.ndarray:
    """σ'(z) at z = [-1, -0.5, 0, 0.5, 1]: 0.196612 0.235004 0.250000 0.235004 0.196612."""
    return dn.ops.sigmoid_gradient(np.array([-1.0, -0.5, 0.0, 0.5, 1.0]))


def network(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> dn.Sequential:
    """n_in-n_hidden-n_out sigmoid MLP, every weight and bias from U(-0.12, 0.12)."""
    model = dn.Sequential(
        dn.Dense(n_in, n_hidden, dtype=np.float64),
        dn.Sigmoid(),
        dn.Dense(n_hidden, n_out, dtype=np.float64),  # logits; the loss applies the sigmoid
    )
    for layer in (model[0], model[2]):  # Θ includes the bias column in the classic exercise
        theta = epsilon_uniform(layer.in_features + 1, layer.out_features, rng, 0.12, np.float64)
        layer.weight.data[...], layer.bias.data[...] = theta[:, 1:], theta[:, 0]
    return model


def debug_gradcheck(lam: float = 3.0) -> float:
    """Gradient check of the 3-5-3 debug network on 5 examples: the max relative difference."""
    model = network(3, 5, 3, np.random.default_rng(0))
    for layer in (model[0], model[2]):  # checkNNGradients' deterministic sin() weights
        n = layer.weight.size + layer.bias.size
        theta = np.sin(np.arange(1, n + 1)).reshape(layer.out_features, -1, order="F") / 10
        layer.weight.data[...], layer.bias.data[...] = theta[:, 1:], theta[:, 0]
    x = np.sin(np.arange(1, 16)).reshape(5, 3, order="F") / 10
    y = 1 + np.arange(1, 6) % 3  # labels 1..3 as in the exercise, here as classes 0..2
    onehot = np.eye(3)[y - 1]
    report = dn.gradcheck(
        model, x, target_values=onehot, loss=ONE_VS_ALL, l2=lam, eps=1e-4, check_inputs=False
    )
    # the exercise's single number: every parameter unrolled into one vector, ε = 1e-4
    return next(row.rel_diff for row in report.rows if row.name == "all parameters")


def crop_mnist(x: np.ndarray) -> np.ndarray:
    """(N, 1, 28, 28) -> (N, 400): the central 20x20 box MNIST centres each digit in."""
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"crop_mnist: expected images (N, 1, 28, 28). Received: {x.shape}.")
    return x[:, 0, 4:24, 4:24].reshape(len(x), 400)


def load(mnist_dir: str | None, n_train: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Training set as (N, features) float64 and labels: digits, or cropped MNIST."""
    from deltanet.data import load_dataset

    if mnist_dir is None:
        ds = load_dataset("digits")
        x, y = ds.x_train.reshape(len(ds.x_train), -1), ds.y_train
        name = "digits 64-25-10"
    else:
        ds = load_dataset("mnist", data_dir=mnist_dir)
        x, y = crop_mnist(ds.x_train), ds.y_train
        name = "MNIST 20x20 400-25-10"
    idx = np.random.default_rng(0).permutation(len(x))[:n_train]  # the exercise used 5,000
    return x[idx].astype(np.float64), y[idx], name


def train(
    x: np.ndarray, y: np.ndarray, lam: float = 1.0, maxiter: int = 50, seed: int = 0
) -> tuple[dn.Sequential, float]:
    """Full-batch CG on the regularised one-vs-all cost; returns the model and train accuracy."""
    model = network(x.shape[1], 25, 10, np.random.default_rng(seed))
    dn.minimize(model, ONE_VS_ALL, x, y, method="CG", maxiter=maxiter, l2=lam)
    accuracy = float(np.mean(model(x).argmax(axis=1) == y))
    return model, accuracy


def run(
    mnist_dir: str | None = None,
    lam: float = 1.0,
    maxiter: int = 50,
    n_train: int = 5000,
    out: str | Path | None = "examples/figures",
) -> dict:
    """Every headline number of the exercise, and the hidden-unit picture when ``out`` is set."""
    x, y, name = load(mnist_dir, n_train)
    start = time.perf_counter()
    model, accuracy = train(x, y, lam, maxiter)
    result = {
        "dataset": name,
        "sigmoid_gradient": sigmoid_gradient_table(),
        "gradcheck_rel_diff": debug_gradcheck(),
        "train_accuracy": accuracy,
        "train_seconds": time.perf_counter() - start,
        "hidden_weights": model[0].weight.data,
    }
    if out is not None:
        from deltanet.plots import plot_filters

        tag = "mnist" if mnist_dir else "digits"
        result["figure"] = plot_filters(model[0].weight.data, Path(out) / f"hidden_{tag}.png")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", metavar="DIR", help="directory with the MNIST IDX files")
    parser.add_argument("--lambda", dest="lam", type=float, default=1.0)
    parser.add_argument("--maxiter", type=int, default=50)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--out", default="examples/figures")
    args = parser.parse_args()
    r = run(args.mnist, args.lam, args.maxiter, args.n_train, args.out)
    print(
        "sigmoid gradient at [-1 -0.5 0 0.5 1]:",
        " ".join(f"{v:.6f}" for v in r["sigmoid_gradient"]),
    )
    print(f"gradient check, 3-5-3 debug network: relative difference {r['gradcheck_rel_diff']:.3e}")
    print(
        f"{r['dataset']}: training accuracy {100 * r['train_accuracy']:.2f}% "
        f"after {args.maxiter} CG iterations ({r['train_seconds']:.1f} s)"
    )
    if "figure" in r:
        print("hidden units:", r["figure"])


if __name__ == "__main__":
    main()
