"""deltanet: deep learning on NumPy with every backward pass derived by hand."""

import os as _os
import sys as _sys

try:  # Ctrl-C while the package loads: for the command, a clean exit as everywhere else
    from deltanet import binary, init, ops  # binary: registers its layers' ONNX exporters
    from deltanet._version import __version__
    from deltanet.binary.layers import QActivation, QConv1D, QConv2D, QConv3D, QConvND, QDense
    from deltanet.fast import memory as _memory
    from deltanet.gradcheck import GradcheckReport, gradcheck, numerical_gradient
    from deltanet.io import (
        Checkpoint,
        FormatError,
        export_onnx,
        load,
        load_checkpoint,
        load_torch_weights,
        save,
        save_torch_weights,
    )
    from deltanet.jacobian import jacobian
    from deltanet.layers import *  # noqa: F403 - the layers are the public API
    from deltanet.layers import __all__ as _layer_names
    from deltanet.layers.registry import layer_from_dict, layer_to_dict
    from deltanet.ops import losses
    from deltanet.train import TrainingDiverged, evaluate, fit, predict

    _memory.keep_freed_memory()  # glibc keeps freed arrays for the next step (fast/memory.py)
except KeyboardInterrupt:
    _command = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    if _command in ("deltanet", "deltanet.exe") or _sys.orig_argv[1:3] == ["-m", "deltanet"]:
        print("deltanet: interrupted", file=_sys.stderr)
        raise SystemExit(130) from None
    raise  # imported by a program of the user's: the interrupt is theirs

__all__ = [
    *_layer_names,
    "QActivation",
    "QConv1D",
    "QConv2D",
    "QConv3D",
    "QConvND",
    "QDense",
    "GradcheckReport",
    "gradcheck",
    "init",
    "layer_from_dict",
    "layer_to_dict",
    "losses",
    "numerical_gradient",
    "ops",
    "Checkpoint",
    "FormatError",
    "TrainingDiverged",
    "evaluate",
    "export_onnx",
    "fit",
    "jacobian",
    "load",
    "load_checkpoint",
    "load_torch_weights",
    "minimize",
    "predict",
    "save",
    "save_torch_weights",
]


def minimize(*args, **kwargs):
    """Full-batch minimisation (CG, L-BFGS-B) through scipy: ``deltanet.train.fullbatch.minimize``.

    Imported on first use so that ``import deltanet`` (and ``deltanet --help``) skips scipy.
    """
    from deltanet.train.fullbatch import minimize as _minimize

    return _minimize(*args, **kwargs)


def __getattr__(name: str):
    # ``deltanet.distributed`` (MPI) loads on first use, so that ``import deltanet`` stays light;
    # ``from deltanet import distributed`` works too.
    if name in ("distributed",):
        import importlib

        return importlib.import_module(f"deltanet.{name}")
    raise AttributeError(f"module 'deltanet' has no attribute {name!r}")
