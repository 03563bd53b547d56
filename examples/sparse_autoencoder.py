"""A sparse autoencoder on the 8x8 digits: KL sparsity penalty, features shown as an image grid.

64 -> 25 (sigmoid) -> 64 (sigmoid), trained with L-BFGS on the classic cost

    J = (1/2N) Σ ||x̂ - x||² + (λ/2) Σ W² + β Σ_j KL(ρ ‖ ρ̂_j),

where ρ̂_j is hidden unit j's mean activation over the training set. The KL term
(``deltanet.ops.sparsity``) pushes each ρ̂_j towards the small target ρ, so each unit answers
to few images and learns a stroke-like feature; the grid shows each unit's input weights.

    python examples/sparse_autoencoder.py [--rho 0.1] [--beta 3] [--out examples/figures]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import deltanet as dn
from deltanet.ops.sparsity import kl_sparsity_backward, kl_sparsity_forward


class KLSparsity(dn.Layer):
    """Identity in the forward pass that adds ``β Σ KL(ρ ‖ ρ̂)``'s gradient to δ on the way back.

    ``penalty`` holds the value of the last forward pass; the cost adds it to the loss.
    """

    def __init__(self, rho: float, beta: float) -> None:
        super().__init__()
        self.rho, self.beta, self.penalty = rho, beta, 0.0

    def _forward(self, a: np.ndarray) -> tuple[np.ndarray, tuple]:
        value, cache = kl_sparsity_forward(a, self.rho, self.beta)
        self.penalty = float(value)
        return a, cache

    def _backward(self, dy: np.ndarray, cache: tuple, input_grad: bool) -> np.ndarray:
        # δ_hidden = (W₂ᵀ δ_out + β(-ρ/ρ̂ + (1-ρ)/(1-ρ̂))/N) · σ'(z): the sigmoid below adds σ'
        return dy + kl_sparsity_backward(1.0, cache)[0]

    def get_config(self) -> dict:
        return {"rho": self.rho, "beta": self.beta}


def autoencoder(n_visible: int, n_hidden: int, rho: float, beta: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    f64 = {"rng": rng, "dtype": np.float64}
    return dn.Sequential(
        dn.Dense(n_visible, n_hidden, **f64),
        dn.Sigmoid(),
        KLSparsity(rho, beta),
        dn.Dense(n_hidden, n_visible, **f64),
        dn.Sigmoid(),
    )


def cost_fn(model: dn.Sequential):
    """``(x̂, x) -> (J without the weight decay, δ)``: reconstruction plus the KL penalty."""

    def cost(xhat: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
        value, dxhat = dn.losses.mean_squared_error(xhat, x, reduction="sum")
        n = len(x)
        return value / (2 * n) + model[2].penalty, dxhat / (2 * n)

    return cost


def digits_images(n: int | None = None) -> np.ndarray:
    """The digits as (N, 64) float64 in [0, 1]."""
    from deltanet.data import load_dataset

    x = load_dataset("digits").x_train.reshape(-1, 64).astype(np.float64)
    return x if n is None else x[:n]


def train(
    x: np.ndarray,
    n_hidden: int = 25,
    rho: float = 0.1,
    beta: float = 3.0,
    lam: float = 3e-3,
    maxiter: int = 400,
    seed: int = 0,
) -> tuple[dn.Sequential, dict]:
    """Minimise J with L-BFGS; returns the model and its headline numbers."""
    model = autoencoder(x.shape[1], n_hidden, rho, beta, seed)
    cost = cost_fn(model)
    # minimize's weight decay is l2/(2N) Σ W²; the classic cost's is (λ/2) Σ W²: l2 = λN
    result = dn.minimize(model, cost, x, x, method="L-BFGS-B", maxiter=maxiter, l2=lam * len(x))
    hidden = model[1](model[0](x))
    recon = model(x)
    return model, {
        "cost": float(result.fun),
        "iterations": int(result.nit),
        "mean_activation": float(hidden.mean()),
        "unit_mean_range": (float(hidden.mean(0).min()), float(hidden.mean(0).max())),
        "reconstruction_mse": float(np.mean((recon - x) ** 2)),
    }


def gradcheck_cost(rho: float = 0.1, beta: float = 3.0, lam: float = 3e-3) -> float:
    """Relative difference of the whole cost's gradient on a small problem (all parameters)."""
    x = digits_images(10)[:, :16] * 0.8 + 0.1
    model = autoencoder(16, 4, rho, beta, seed=1)
    report = dn.gradcheck(
        model, x, target_values=x, loss=cost_fn(model), l2=lam * len(x), check_inputs=False
    )
    return next(r.rel_diff for r in report.rows if r.name == "all parameters")


def run(out: str | Path | None = "examples/figures", maxiter: int = 400, n: int | None = None):
    x = digits_images(n)
    model, result = train(x, maxiter=maxiter)
    result["gradcheck_rel_diff"] = gradcheck_cost()
    if out is not None:
        from deltanet.plots import plot_filters

        path = Path(out) / "sparse_autoencoder_features.png"
        result["figure"] = plot_filters(model[0].weight.data, path)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maxiter", type=int, default=400)
    parser.add_argument("--out", default="examples/figures")
    args = parser.parse_args()
    r = run(args.out, args.maxiter)
    lo, hi = r["unit_mean_range"]
    print(f"gradient check of the full cost: relative difference {r['gradcheck_rel_diff']:.2e}")
    print(f"L-BFGS: {r['iterations']} iterations, cost {r['cost']:.4f}")
    print(
        f"mean hidden activation {r['mean_activation']:.4f} (target ρ = 0.1), "
        f"per unit {lo:.3f}..{hi:.3f}"
    )
    print(f"reconstruction mean squared error {r['reconstruction_mse']:.4f}")
    if "figure" in r:
        print("features:", r["figure"])


if __name__ == "__main__":
    main()
