"""What a file is when it is not a safetensors file, and what to use instead.

``read_safetensors`` asks ``identify`` only about a file whose first 8 bytes, read as the
header length, are absurd (over 100 MB), so a valid or merely truncated safetensors file is
never judged by its name or first bytes. Only those bytes are read, and a zip archive's list of
names; nothing is unpickled or parsed.
"""

from __future__ import annotations

import os
import zipfile

_TORCH_HINT = (
    "deltanet never unpickles a file (a pickle can run any code). In the PyTorch program that "
    "holds the model, write its weights with safetensors.torch.save_file(model.state_dict(), "
    "'weights.safetensors'), then load them into the same architecture built in deltanet with "
    "deltanet.load_torch_weights(model, 'weights.safetensors')."
)
_MODEL_FILES = (
    "deltanet model files are safetensors written by deltanet.save, ModelCheckpoint or "
    "`deltanet train`."
)
_HINTS = {
    "onnx": "an ONNX model. deltanet writes ONNX (export_onnx) but does not read it: load the "
    "deltanet model file it was exported from, or run it with onnxruntime; PyTorch weights "
    "load into a deltanet model with deltanet.load_torch_weights(model, 'weights.safetensors').",
    "torch-zip": "a PyTorch checkpoint (torch.save: a zip archive of pickles). " + _TORCH_HINT,
    "pickle": "a Python pickle (torch.save's legacy format, joblib, pickle.dump). " + _TORCH_HINT,
    "npy": "a NumPy array (.npy), not a model. Read arrays with numpy.load(path, "
    "allow_pickle=False); " + _MODEL_FILES,
    "npz": "a NumPy archive (.npz), not a model. A dataset of arrays x and y trains with "
    "`deltanet train --data FILE.npz`; " + _MODEL_FILES,
    "zip": "a zip archive (a Keras .keras file, or another framework's), not a model. "
    + _MODEL_FILES,
    "hdf5": "an HDF5 file (a Keras .h5 model?), not a model that deltanet reads. " + _MODEL_FILES,
    "json": "a JSON text file, not a model (a run's settings?). " + _MODEL_FILES,
    "text": "a text file, not a model. " + _MODEL_FILES,
}
# The fields an ONNX ModelProto starts with, after ir_version (field 1, a varint: 0x08 n).
_ONNX_NEXT_FIELDS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}


def identify(path: str | os.PathLike) -> str | None:
    """``"it is ..., what to do"`` for a known foreign format, or None."""
    kind = _kind(path)
    return None if kind is None else _HINTS[kind]


def _kind(path: str | os.PathLike) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, protocol 2-5
        return "pickle"
    if os.fspath(path).lower().endswith(".onnx") or (
        len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _ONNX_NEXT_FIELDS
    ):
        return "onnx"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "json" if head.lstrip()[:1] in (b"{", b"[") else "text"
    return None


def _zip_kind(path: str | os.PathLike) -> str:
    """A PyTorch checkpoint holds ``<name>/data.pkl``; a NumPy archive only ``.npy`` members."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "zip"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch-zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"
