"""A workload: a name, a batch size, a target ratio and how to build both frameworks' steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks import models

Step = Callable[[], object]


@dataclass(frozen=True)
class Workload:
    name: str
    network: str
    batch: int
    mode: str  # "train", "infer" or "fwd_bwd"
    target: float

    def build(self, torch, batch: int | None = None) -> tuple[Step, Step | None]:
        """The deltanet step and the PyTorch step (None without torch), on the same data."""
        n = batch or self.batch
        model, shape = models.build(self.network)
        net = None if torch is None else models.to_torch(model, torch)
        x, y = models.data(shape, n)
        if self.mode == "train":
            ours = models.deltanet_train(model, x, y)
            theirs = net and models.torch_train(net, x, y, torch)
        elif self.mode == "infer":
            ours = models.deltanet_infer(model, x)
            theirs = net and models.torch_infer(net, x, torch)
        else:
            out_shape = model.output_shape(x.shape)
            dy = np.random.default_rng(1).standard_normal(out_shape).astype(np.float32)
            ours = models.deltanet_fwd_bwd(model, x, dy)
            theirs = net and models.torch_fwd_bwd(net, x, dy, torch)
        return ours, theirs
