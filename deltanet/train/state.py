"""The fit loop's state, and the checkpoint metadata that resumes it.

``TrainingState.checkpoint_metadata()`` is the JSON-able part of a checkpoint (the weights and
optimizer state are tensors): epoch, step, the shuffling Generator's state, the states of the
Generators that layers own (dropout), the history so far and the callbacks' states; with
augmentation, its spec and its Generator's state too (absent otherwise, so checkpoints of runs
without it are as before). Restoring it makes a resumed run draw the same batches, masks and
augmentations as the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from deltanet.io import FormatError
from deltanet.layers.base import Layer

CHECKPOINT_FORMAT = 1  # version of the training metadata a checkpoint carries


class Stateful(Protocol):
    """What the state needs of a callback (``deltanet.train.callbacks.Callback`` has it)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EpochLog(Protocol):
    """What the state needs of the History callback: the epochs and their logs so far."""

    epoch: list[int]
    history: dict[str, list[Any]]


@dataclass(eq=False)
class TrainingState:
    """What the fit loop shares with callbacks and writes into checkpoints."""

    model: Layer
    optimizer: Any
    rng: np.random.Generator  # the shuffling Generator
    epochs: int
    batch_size: int
    num_examples: int
    steps_per_epoch: int
    log_keys: tuple[str, ...]
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken: the iteration a per-step schedule sees next
    initial_epoch: int = 0  # > 0 after resuming from a checkpoint
    stop_training: bool = False
    distributed: bool = False  # data-parallel over MPI ranks (set by the strategy's start)
    history: EpochLog | None = None
    callbacks: list[Stateful] = field(default_factory=list)
    augment: Any = None  # a deltanet.data.augment.Compose applied to training batches, or None
    augment_rng: np.random.Generator | None = None  # its own Generator (not the shuffling one)

    def checkpoint_metadata(self) -> dict[str, Any]:
        """JSON-able metadata that, with the weights and optimizer state, resumes the run."""
        return {
            "training_format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "step": self.step,
            "rng_state": self.rng.bit_generator.state,
            "layer_rng_states": {k: g.bit_generator.state for k, g in layer_generators(self.model)},
            "history": {
                "epoch": list(self.history.epoch) if self.history else [],
                "logs": self.history.history if self.history else {},
            },
            "callbacks": {key: cb.state_dict() for key, cb in self._keyed_callbacks()},
            **self._augment_metadata(),
        }

    def _augment_metadata(self) -> dict[str, Any]:
        if self.augment is None or self.augment_rng is None:
            return {}
        return {
            "augment": self.augment.spec,
            "augment_rng_state": self.augment_rng.bit_generator.state,
        }

    def check_metadata(self, metadata: Any) -> dict[str, Any]:
        """``metadata`` validated against this run (FormatError if malformed); changes nothing."""
        meta = _check_metadata(metadata)
        generators = dict(layer_generators(self.model))
        if set(generators) != set(meta["layer_rng_states"]):
            raise _format_error(
                f"layer random generators disagree with the model. Checkpoint: "
                f"{sorted(meta['layer_rng_states'])}; model: {sorted(generators)}."
            )
        _set_rng_state(self.rng, meta["rng_state"], "rng_state", dry_run=True)
        for key, state in meta["layer_rng_states"].items():
            _set_rng_state(generators[key], state, f"layer_rng_states[{key!r}]", dry_run=True)
        self._check_augment(meta)
        return meta

    def _check_augment(self, meta: dict[str, Any]) -> None:
        """The checkpoint's augmentation must be this run's (none in both, or the same spec)."""
        saved = meta.get("augment", "none")
        ours = "none" if self.augment is None else self.augment.spec
        if saved != ours:
            raise _format_error(
                f"the checkpoint's run augmented its training batches with {saved!r}, this one "
                f"with {ours!r}: a resumed run must augment as it did to continue it exactly. "
                f"Pass augment={None if saved == 'none' else saved!r}."
            )
        if self.augment_rng is not None:
            state = meta.get("augment_rng_state")
            _set_rng_state(self.augment_rng, state, "augment_rng_state", dry_run=True)

    def restore(self, metadata: dict[str, Any]) -> None:
        """Load ``checkpoint_metadata()`` output: RNG states, epoch, step, history, callbacks."""
        meta = self.check_metadata(metadata)
        generators = dict(layer_generators(self.model))
        _set_rng_state(self.rng, meta["rng_state"], "rng_state")
        for key, state in meta["layer_rng_states"].items():
            _set_rng_state(generators[key], state, f"layer_rng_states[{key!r}]")
        if self.augment_rng is not None:
            _set_rng_state(self.augment_rng, meta["augment_rng_state"], "augment_rng_state")
        self.epoch = self.initial_epoch = meta["epoch"]
        self.step = meta["step"]
        if self.history is not None:
            self.history.epoch = list(meta["history"]["epoch"])
            self.history.history = {k: list(v) for k, v in meta["history"]["logs"].items()}
        saved = meta["callbacks"]
        for key, cb in self._keyed_callbacks():
            if key in saved:
                cb.load_state_dict(saved[key])

    def _keyed_callbacks(self) -> list[tuple[str, Stateful]]:
        """Stable keys: class name, plus ``#k`` for the k-th repeat (History is saved apart)."""
        seen: dict[str, int] = {}
        out = []
        for cb in self.callbacks:
            if cb is self.history:
                continue
            name = type(cb).__name__
            k = seen[name] = seen.get(name, -1) + 1
            out.append((name if k == 0 else f"{name}#{k}", cb))
        return out


def layer_generators(model: Layer) -> list[tuple[str, np.random.Generator]]:
    """``("layer:attr", Generator)`` for every Generator a layer of ``model`` owns (dropout).

    ``layer`` is the dotted name in the layer tree (``""`` for the model itself, ``"0"``,
    ``"3.block.1"``), so the Generators of a custom block's layers are checkpointed too; for a
    Sequential the keys are those of earlier versions (``"2:rng"``).
    """
    return [
        (f"{name}:{attr}", value)
        for name, layer in model.named_layers()
        for attr, value in vars(layer).items()
        if isinstance(value, np.random.Generator)
    ]


def _check_metadata(meta: Any) -> dict[str, Any]:
    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    problems = []
    if not isinstance(meta, dict) or meta.get("training_format") != CHECKPOINT_FORMAT:
        problems.append(f"training_format {CHECKPOINT_FORMAT}")
        meta = meta if isinstance(meta, dict) else {}
    if not (count(meta.get("epoch")) and count(meta.get("step"))):
        problems.append("epoch and step as non-negative ints")
    for key in ("rng_state", "layer_rng_states", "callbacks"):
        if not isinstance(meta.get(key), dict):
            problems.append(f"{key} as a dict")
    if isinstance(meta.get("callbacks"), dict):
        if not all(isinstance(v, dict) for v in meta["callbacks"].values()):
            problems.append("callbacks as {name: dict}")
    history = meta.get("history")
    if not (
        isinstance(history, dict)
        and isinstance(history.get("epoch"), list)
        and isinstance(history.get("logs"), dict)
        and all(isinstance(v, list) for v in history["logs"].values())
    ):
        problems.append("history as {'epoch': list, 'logs': {name: list}}")
    if problems:
        raise _format_error(f"not a training checkpoint: expected {'; '.join(problems)}.")
    return meta


def _set_rng_state(rng: np.random.Generator, state: Any, what: str, dry_run=False) -> None:
    """Set the Generator's state, or with ``dry_run`` only check that it would be accepted."""
    target = type(rng.bit_generator)() if dry_run else rng.bit_generator
    try:
        target.state = state
    except (TypeError, ValueError, KeyError) as err:
        raise _format_error(f"invalid {what} for {type(target).__name__}: {err}") from err


def _format_error(message: str) -> FormatError:
    return FormatError(message)
