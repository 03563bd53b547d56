"""Files: model files (``save`` / ``load``), safetensors, ONNX export and PyTorch weights.

``checkpoint`` writes and reads model files (architecture, weights, optimizer state, metadata),
``architecture`` refuses on save what load could not rebuild, ``safetensors`` is the strict
reader and atomic writer underneath, ``onnx`` exports a model through one registered exporter
per layer class (``onnx_layers`` registers the built-in ones), and ``torch_weights`` moves
PyTorch state dicts in and out.
"""

from deltanet.io import onnx_layers  # registers the built-in layers' ONNX exporters
from deltanet.io.checkpoint import (
    ELEMENT_BOUND_FACTOR,
    MIN_ELEMENT_BOUND,
    Checkpoint,
    load,
    load_checkpoint,
    save,
)
from deltanet.io.onnx import export_onnx, onnx_exporter
from deltanet.io.safetensors import FormatError, atomic_write, read_safetensors, write_safetensors
from deltanet.io.torch_weights import load_torch_weights, save_torch_weights

__all__ = [
    "ELEMENT_BOUND_FACTOR",
    "MIN_ELEMENT_BOUND",
    "Checkpoint",
    "FormatError",
    "atomic_write",
    "export_onnx",
    "load",
    "load_checkpoint",
    "load_torch_weights",
    "onnx_exporter",
    "read_safetensors",
    "save",
    "save_torch_weights",
    "write_safetensors",
]
