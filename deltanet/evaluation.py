"""Moved: ``evaluate`` and ``predict`` are in ``deltanet.train.evaluate``, the losses by name
(``LOSSES``, ``resolve_loss``) in ``deltanet.ops.losses``. This module re-exports them for one
release, for code that imports them from here."""

from deltanet.ops.losses import LOSSES, LossFn, resolve_loss
from deltanet.train.evaluate import evaluate, predict

__all__ = ["LOSSES", "LossFn", "evaluate", "predict", "resolve_loss"]
