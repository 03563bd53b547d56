"""The training loop: ``fit``, ``evaluate``, ``predict``, callbacks, checkpoints' resume state.

``fit`` runs one process's loop; a strategy (``deltanet.train.strategy``) does whatever
spreading the work over processes needs (``deltanet.distributed.MPIStrategy``).
"""

from deltanet.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
)
from deltanet.train.divergence import TrainingDiverged
from deltanet.train.evaluate import evaluate, predict
from deltanet.train.fit import fit
from deltanet.train.progress import ProgressBar
from deltanet.train.state import TrainingState
from deltanet.train.strategy import LocalStrategy, Strategy

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "LocalStrategy",
    "ModelCheckpoint",
    "ProgressBar",
    "Strategy",
    "TrainingDiverged",
    "TrainingState",
    "evaluate",
    "fit",
    "predict",
]
