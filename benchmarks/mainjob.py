"""The main job as a user runs it: ``deltanet train`` against the same training in plain PyTorch.

deltanet: the real command, ``deltanet train --out DIR --quiet`` (its defaults and the main
job's recipe, ``deltanet/cli/recipes.py``: digits_cnn on the 8x8 digits, 10% held out for
validation, standardized, Adam, cosine decay over the run, seed 0, batch 64, lr 4e-3, random
crops with zero padding 1), run in this process through ``deltanet.cli.main.main``; its
throughput is ``images_per_second`` of history.csv, which ``fit`` measures per epoch over the
training steps alone (validation and checkpoints excluded).

PyTorch: the same network (``models.to_torch``: same layers, same initial weights), the same
standardized training rows, Adam with the same learning rate, the same cosine decay per step,
the same batch with a fresh shuffle each epoch, the same augmentation (zero padding, then a
random crop per example, drawn on the CPU as deltanet does), the loss and the correct count of
each batch read back (as ``fit`` does for its logs), validation after each epoch outside the
timing.

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

from deltanet.cli.common import TRAIN_DEFAULTS, default_model
from deltanet.cli.recipes import apply_recipe

NAME = "main_job_deltanet_train"
# The main job's settings as ``deltanet train`` resolves them: the defaults, the model chosen
# from the data's example shape ((1, 8, 8) for the digits), then that pair's recipe.
SETTINGS = {**TRAIN_DEFAULTS, "model": TRAIN_DEFAULTS["model"] or default_model((1, 8, 8))}
apply_recipe(SETTINGS, given=())
BATCH = int(SETTINGS["batch_size"])


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

    c = SETTINGS
    ds = load_dataset(c["data"], seed=c["seed"])
    x, y, xv, yv = train_val_split(ds.x_train, ds.y_train, c["val_fraction"], seed=c["seed"])
    std = Standardizer.fit(x)
    return ds, (std.transform(x), y), (std.transform(xv), yv)


def torch_epochs(epochs: int, batch: int, torch) -> list[float]:
    """The plain PyTorch loop for ``epochs`` epochs; images per second of each epoch."""
    from benchmarks import models
    from deltanet.zoo import build_model

    c = SETTINGS
    ds, (x, y), (xv, yv) = _data()
    model = build_model(c["model"], input_shape=tuple(ds.input_shape), num_classes=ds.num_classes,
                        seed=c["seed"])  # fmt: skip
    net = models.to_torch(model, torch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype("int64"))
    txv, tyv = torch.from_numpy(xv), torch.from_numpy(yv.astype("int64"))
    lr = float(c["lr"])
    crop = _crop_padding(str(c["augment"]))
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
            xb, yb = _augment(tx[idx], crop, gen, torch), ty[idx]
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


def _crop_padding(spec: str) -> int:
    """The P of the main job's ``cropP`` augmentation (0: none); other transforms are refused,
    so that the two sides never silently differ."""
    if spec in ("none", ""):
        return 0
    if not (spec.startswith("crop") and spec[4:].isdigit()):
        raise ValueError(f"mainjob: the PyTorch twin implements cropP only. Received: {spec!r}.")
    return int(spec[4:])


def _augment(xb, pad: int, gen, torch):
    """Zero padding ``pad``, then a random crop back to the size, per example (``--augment``)."""
    if pad == 0:
        return xb
    n, c, h, w = xb.shape
    padded = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), generator=gen)
    left = torch.randint(0, 2 * pad + 1, (n, 1, 1, 1), generator=gen)
    rows = top + torch.arange(h).view(1, 1, h, 1)
    cols = left + torch.arange(w).view(1, 1, 1, w)
    return padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]


def after_first(rates: list[float]) -> float:
    """Median images per second over the epochs after the first (the only one if just one)."""
    return statistics.median(rates[1:] or rates)
