"""The main job as a user runs it: ``deltanet train`` against the same training in plain PyTorch.

deltanet: the real command, ``deltanet train --out DIR --quiet`` (its defaults: digits_cnn on
the 8x8 digits, 10% held out for validation, standardized, Adam lr 2e-3, cosine decay over the
run, batch 32, seed 0), run in this process through ``deltanet.cli.main.main``; its throughput
is ``images_per_second`` of history.csv, which ``fit`` measures per epoch over the training
steps alone (validation and checkpoints excluded).

PyTorch: the same network (``models.to_torch``: same layers, same initial weights), the same
standardized training rows, Adam with the same learning rate, the same cosine decay per step,
batch 32 with a fresh shuffle each epoch, the loss and the correct count of each batch
read back (as ``fit`` does for its logs), validation after each epoch outside the timing.

Both report the median over the epochs after the first (the first pays for compilation,
caches and allocator growth).
"""

from __future__ import annotations

import csv
import math
import statistics
import tempfile
import time
from pathlib import Path

from deltanet.cli.common import TRAIN_DEFAULTS

NAME = "main_job_deltanet_train"
BATCH = int(TRAIN_DEFAULTS["batch_size"])


def deltanet_epochs(epochs: int, batch: int) -> list[float]:
    """``deltanet train`` for ``epochs`` epochs; images per second of each epoch."""
    from deltanet.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = ["train", "--out", str(out), "--quiet", "--epochs", str(epochs)]
        status = main([*argv, "--batch-size", str(batch)])
        if status != 0:
            raise RuntimeError(f"deltanet train exited with status {status}")
        with open(out / "history.csv", newline="") as f:
            return [float(row["images_per_second"]) for row in csv.DictReader(f)]


def _data():
    """The rows ``deltanet train`` trains and validates on, standardized as it does."""
    from deltanet.data import Standardizer, load_dataset, train_val_split

    c = TRAIN_DEFAULTS
    ds = load_dataset(c["data"], seed=c["seed"])
    x, y, xv, yv = train_val_split(ds.x_train, ds.y_train, c["val_fraction"], seed=c["seed"])
    std = Standardizer.fit(x)
    return ds, (std.transform(x), y), (std.transform(xv), yv)


def torch_epochs(epochs: int, batch: int, torch) -> list[float]:
    """The plain PyTorch loop for ``epochs`` epochs; images per second of each epoch."""
    from benchmarks import models
    from deltanet.cli.common import default_model
    from deltanet.zoo import build_model

    c = TRAIN_DEFAULTS
    ds, (x, y), (xv, yv) = _data()
    name = c["model"] or default_model(tuple(ds.input_shape))
    model = build_model(name, input_shape=tuple(ds.input_shape), num_classes=ds.num_classes,
                        seed=c["seed"])  # fmt: skip
    net = models.to_torch(model, torch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype("int64"))
    txv, tyv = torch.from_numpy(xv), torch.from_numpy(yv.astype("int64"))
    lr = float(c["lr"])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = -(-len(y) // batch)
    total = epochs * steps
    gen = torch.Generator().manual_seed(int(c["seed"]))
    f = torch.nn.functional
    rates, step = [], 0
    for _ in range(epochs):
        net.train()
        start = time.perf_counter()
        order = torch.randperm(len(y), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            for group in opt.param_groups:  # deltanet's cosine: lr at step t of the run
                group["lr"] = lr * (1 + math.cos(math.pi * min(step, total) / total)) / 2
            xb, yb = tx[idx], ty[idx]
            opt.zero_grad()
            logits = net(xb)
            loss = f.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            step += 1
        rates.append(len(y) / (time.perf_counter() - start))
        net.eval()
        with torch.inference_mode():  # validation, outside the timing as in fit
            f.cross_entropy(net(txv), tyv).item()
    return rates


def after_first(rates: list[float]) -> float:
    """Median images per second over the epochs after the first (the only one if just one)."""
    return statistics.median(rates[1:] or rates)
