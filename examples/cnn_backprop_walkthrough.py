"""CNN backpropagation, step by step: each layer's δ printed and checked numerically.

A tiny network, conv 3x3 (1 -> 2 channels) -> sigmoid -> pool 2x2 (mean or max) -> flatten ->
dense -> softmax with cross-entropy, runs forward on a few 6x6 images; backward then passes
the error term δ down, layer by layer. For every layer the script prints the δ arriving at its
output and compares it (and the kernel, weight and bias gradients) with central differences of
the loss with respect to that same array. docs/backprop.md derives each formula.

    python examples/cnn_backprop_walkthrough.py [--pool mean|max] [--quiet]
"""

from __future__ import annotations

import argparse

import numpy as np

import deltanet as dn
from deltanet.gradcheck import numerical_gradient, relative_difference
from deltanet.ops.losses import softmax_cross_entropy


def tiny_cnn(pool: str = "mean", seed: int = 0) -> dn.Sequential:
    """conv3x3(1->2) sigmoid pool2 flatten dense(8->3), float64."""
    if pool not in ("mean", "max"):
        raise ValueError(f"tiny_cnn: pool must be 'mean' or 'max'. Received: {pool!r}.")
    rng = np.random.default_rng(seed)
    pooling = dn.AvgPool2D(2) if pool == "mean" else dn.MaxPool2D(2)
    return dn.Sequential(
        dn.Conv2D(1, 2, 3, rng=rng, dtype=np.float64),  # (N, 1, 6, 6) -> (N, 2, 4, 4)
        dn.Sigmoid(),
        pooling,  # -> (N, 2, 2, 2)
        dn.Flatten(),  # -> (N, 8)
        dn.Dense(8, 3, rng=rng, dtype=np.float64),  # -> (N, 3) logits
    )


def walkthrough(pool: str = "mean", n: int = 4, seed: int = 0, verbose: bool = True) -> dict:
    """Forward, backward, and a numerical check of every δ and parameter gradient.

    Returns {name: relative difference}: "δ after <layer>" for each layer's output, "δ at the
    input", and "<layer> <param>" for each parameter.
    """
    model = tiny_cnn(pool, seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((n, 1, 6, 6))
    y = rng.integers(0, 3, n)
    layers = list(model)

    # forward, keeping each layer's output a_i
    acts = [x]
    for layer in layers:
        acts.append(layer(acts[-1]))
    loss, delta = softmax_cross_entropy(acts[-1], y)
    say = print if verbose else (lambda *a, **k: None)
    say(f"loss {loss:.6f}; δ at the logits = (softmax - onehot) / N:\n{np.round(delta, 4)}")

    # backward: δ_i is the error term arriving at the output of layer i
    deltas = [None] * len(layers)
    deltas[-1] = delta
    for i in range(len(layers) - 1, 0, -1):
        deltas[i - 1] = layers[i].backward(deltas[i])
    dx = layers[0].backward(deltas[0])  # δ at the input: the full convolution with rot180(w)

    results = {}
    for i, layer in enumerate(layers):
        rest = dn.Sequential(*layers[i + 1 :])
        out = acts[i + 1].copy()

        def loss_from_here(out=out, rest=rest):  # L as a function of layer i's output
            return softmax_cross_entropy(rest(out) if len(rest) else out, y)[0]

        num = numerical_gradient(loss_from_here, out)
        name = f"δ after {i}: {layer.label()}"
        results[name] = relative_difference(num, deltas[i])
        say(f"\n{name}, shape {deltas[i].shape}: relative difference {results[name]:.2e}")
        say(np.round(deltas[i][0], 5))
    num = numerical_gradient(lambda: softmax_cross_entropy(model(x), y)[0], x)
    results["δ at the input"] = relative_difference(num, dx)
    say(f"\nδ at the input: relative difference {results['δ at the input']:.2e}")
    for i, layer in enumerate(layers):  # the parameter gradients, against the whole network
        for pname, p in layer.named_parameters():
            num = numerical_gradient(lambda: softmax_cross_entropy(model(x), y)[0], p.data)
            key = f"{i}: {layer.label()} {pname}"
            results[key] = relative_difference(num, p.grad)
            say(f"∂L/∂{pname} of {key}: relative difference {results[key]:.2e}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", choices=("mean", "max"), default="mean")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    results = walkthrough(args.pool, verbose=not args.quiet)
    worst = max(results.values())
    print(
        f"\n{len(results)} checks, largest relative difference {worst:.2e}:",
        "OK" if worst < 1e-7 else "FAILED",
    )


if __name__ == "__main__":
    main()
