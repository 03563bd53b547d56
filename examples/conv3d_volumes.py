"""3D convolution on the volumes dataset: five solid shapes in 16x16x16 voxel grids.

Sphere, plate, rod, hollow shell and 3D cross at random positions, sizes and orientations, with
noise (``deltanet.data.load_dataset("volumes")``: 1,000 train / 250 test). The zoo's ``cnn3d``
(two 3x3x3 'same' convs with ReLU and 2x2x2 max-pools, then dense 64 and dense 5) trained with
Adam and a cosine learning-rate decay for 6 epochs; the target is at least 95% test accuracy.

    python examples/conv3d_volumes.py [--epochs 6] [--out examples/figures]
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

import deltanet as dn
from deltanet.optim import Adam
from deltanet.schedules import cosine
from deltanet.zoo import build_model


def run(
    epochs: int = 6,
    n_train: int | None = None,
    out: str | Path | None = "examples/figures",
    seed: int = 0,
) -> dict:
    """Train cnn3d on volumes; ``n_train`` trains on a subset (tests). Test accuracy et al."""
    from deltanet.data import load_dataset

    ds = load_dataset("volumes", seed=seed)
    x, y = ds.x_train[:n_train], ds.y_train[:n_train]
    model = build_model("cnn3d", input_shape=ds.input_shape, num_classes=5, seed=seed)
    batch, lr = 32, 3e-3
    steps = epochs * -(-len(x) // batch)
    start = time.perf_counter()
    history = dn.fit(
        model,
        "cross_entropy",
        Adam(model.parameters(), lr=lr),
        (x, y),
        epochs=epochs,
        batch_size=batch,
        schedule=functools.partial(cosine, base_lr=lr, max_iter=steps),  # decays to 0
        validation_data=(ds.x_test, ds.y_test),  # reported only
        seed=seed,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    classes, _ = dn.predict(model, ds.x_test)
    result = {
        "test_accuracy": float(np.mean(classes == ds.y_test)),
        "train_seconds": seconds,
        "parameters": model.num_parameters(),
        "per_class_accuracy": {
            name: float(np.mean(classes[ds.y_test == k] == k))
            for k, name in enumerate(ds.class_names)
        },
    }
    if out is not None:
        from deltanet.plots import plot_confusion_matrix, plot_history

        cm = np.zeros((5, 5), dtype=np.int64)
        np.add.at(cm, (ds.y_test, classes), 1)
        out = Path(out)
        result["figures"] = [
            plot_history(history, out / "volumes_history.png"),
            plot_confusion_matrix(cm, out / "volumes_confusion.png", ds.class_names),
        ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="examples/figures")
    args = parser.parse_args()
    r = run(args.epochs, out=args.out, seed=args.seed)
    print(
        f"cnn3d ({r['parameters']:,} parameters): test accuracy {100 * r['test_accuracy']:.1f}%"
        f" after {args.epochs} epochs, {r['train_seconds']:.0f} s"
    )
    print(
        "per class:", ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["per_class_accuracy"].items())
    )
    for path in r.get("figures", []):
        print("figure:", path)


if __name__ == "__main__":
    main()
