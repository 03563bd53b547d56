"""The fit loop's progress display: a tqdm bar per epoch on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from deltanet.train.callbacks import Callback


class ProgressBar(Callback):
    """Show loss, accuracy, learning rate and images/s while training.

    ``verbose=0``: silent. ``verbose=1``: a tqdm bar per epoch when ``stream`` (default: stdout
    at the start of training) is a terminal, else one plain line per epoch (CI logs, pipes).
    ``verbose=2``: always plain lines.

    Raises ValueError for a ``verbose`` other than 0, 1 or 2.
    """

    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        if verbose not in (0, 1, 2):
            raise ValueError(f"ProgressBar: verbose must be 0, 1 or 2. Received: {verbose!r}.")
        self.verbose, self.stream = verbose, stream
        self._out: TextIO | None = None
        self._use_bar = False
        self._bar: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._out = self.stream if self.stream is not None else sys.stdout
        isatty = getattr(self._out, "isatty", None)
        self._use_bar = self.verbose == 1 and callable(isatty) and bool(isatty())

    def on_epoch_begin(self, epoch: int) -> None:
        if not self._use_bar:
            return
        from tqdm import tqdm  # lazily: importing the package should stay cheap

        self.close()
        self._bar = tqdm(
            total=self.state.steps_per_epoch,
            desc=f"Epoch {epoch + 1}/{self.state.epochs}",
            unit="batch",
            file=self._out,
            leave=True,
            dynamic_ncols=True,
        )

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(_format(logs, brief=True), refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.verbose == 0:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(_format(logs, brief=True), refresh=False)
            self.close()
        else:
            print(
                f"Epoch {epoch + 1}/{self.state.epochs} - {_format(logs)}",
                file=self._out,
                flush=True,
            )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()

    def close(self) -> None:
        """Close an open bar (the fit loop calls this even when training fails)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _format(logs: dict[str, Any], brief: bool = False) -> str:
    """``loss 0.1234 - acc 0.9612 - val_loss ... - lr 1.0e-03 - 12,345 img/s - 1.2 s``."""
    parts = []
    for key, short in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss")):
        if key in logs:
            parts.append(f"{short} {logs[key]:.4f}")
    if "val_accuracy" in logs:
        parts.append(f"val_acc {logs['val_accuracy']:.4f}")
    if "lr" in logs:
        parts.append(f"lr {logs['lr']:.2e}")
    if "images_per_second" in logs:
        parts.append(f"{logs['images_per_second']:,.0f} img/s")
    if "seconds" in logs and not brief:
        parts.append(f"{logs['seconds']:.1f} s")
    return " - ".join(parts)
