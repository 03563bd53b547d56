"""The served model: prediction, a summary, and the inspection of one input (every layer's
output and the saliency map), safe to call from many threads at once.

Layers keep the cache of their last forward pass in themselves, so two requests running the
same model at once would mix their caches (and a backward pass would use the other request's
input). One lock serialises the model's use: each request is a few milliseconds of NumPy.

Under that lock BLAS runs on one thread: one example's matrices are tiny, and OpenBLAS's extra
threads only wait on each other (on 2 busy cores the load test answered 144 requests a second
with OPENBLAS_NUM_THREADS=1, 80 with 2).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from deltanet.serve.convert import recipe_for

MAX_MAP_CHANNELS = 64  # feature maps sent per layer: the page shows small images of each
MAX_VECTOR = 1024  # values sent per dense output


class Predictor:
    """A model with its run's metadata (``load_model_file``'s pair), used under one lock."""

    def __init__(self, model: Any, meta: dict[str, Any], source: str = "") -> None:
        from deltanet.cli.common import standardizer_from

        shape = meta.get("input_shape")
        if not shape:
            raise ValueError(
                f"{source or 'the model file'} does not record its input shape (run metadata): "
                "serve a model file written by deltanet train."
            )
        self.model = model.eval()
        self.meta = meta
        self.source = source
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in shape)
        self.standardizer = standardizer_from(meta)
        params = model.parameters()
        self.dtype = params[0].dtype if params else np.dtype(np.float32)
        self.recipe = recipe_for(meta.get("data"), self.input_shape)
        self.lock = threading.Lock()
        self._blas = _blas_controller()
        self.num_classes = int(meta.get("num_classes") or 0) or None
        names = meta.get("class_names")
        self.class_names: list[str] | None = [str(c) for c in names] if names else None

    @contextlib.contextmanager
    def _use(self) -> Iterator[None]:
        """The model to this thread alone, with BLAS on one thread."""
        with self.lock, self._blas.limit(limits=1) if self._blas else contextlib.nullcontext():
            yield

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """Dataset-scale examples ``(N, *input_shape)`` -> the model's standardised input."""
        x = x if self.standardizer is None else self.standardizer.transform(x)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def names(self, k: int) -> list[str]:
        return self.class_names if self.class_names and len(self.class_names) == k else [
            str(i) for i in range(k)
        ]  # fmt: skip

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` of dataset-scale examples ``x (N, *input_shape)``."""
        from deltanet.ops.activations import softmax_forward

        xs = self._prepare(x)
        with self._use():
            logits = self.model(xs)
            self.model.clear_cache()
        return np.asarray(softmax_forward(logits.astype(np.float64))[0])

    def inspect(self, x: np.ndarray) -> dict[str, Any]:
        """One example ``x (*input_shape)``: probabilities, each top-level layer's output and
        the saliency map (δ at the input of the predicted class's logit, one backward pass;
        None, with ``saliency_error``, for a model without backward: a bit-packed one)."""
        from deltanet.ops.activations import softmax_forward

        xs = self._prepare(x[None])
        with self._use():
            outputs = self._layer_outputs(xs)
            logits = outputs[-1][2] if outputs else self.model(xs)
            k = int(np.argmax(logits[0]))
            onehot = np.zeros_like(logits)
            onehot[0, k] = 1
            try:
                dx, why = self._input_grad(onehot), None
            except ValueError as err:  # a bit-packed layer is inference-only: no backward
                dx, why = None, str(err)
            self.model.zero_grad()  # backward added into .grad: leave the model as it was
            self.model.clear_cache()
        probs = np.asarray(softmax_forward(logits.astype(np.float64))[0])[0]
        saliency = None if dx is None else rounded(dx[0].sum(axis=0) if dx.ndim > 2 else dx[0])
        return {
            "class": k,
            "label": self.names(len(probs))[k],
            "probabilities": rounded(probs),
            "layers": [_layer_view(name, layer, y[0]) for name, layer, y in outputs],
            "saliency": saliency,
            **({"saliency_error": why} if why else {}),
        }

    def _children(self) -> list[tuple[str, Any]]:
        from deltanet.layers import Sequential

        return list(self.model.named_children()) if isinstance(self.model, Sequential) else []

    def _layer_outputs(self, xs: np.ndarray) -> list[tuple[str, Any, np.ndarray]]:
        """``(name, layer, output)`` of each layer of a Sequential model, run one by one."""
        outputs = []
        for name, layer in self._children():
            xs = layer(xs)
            outputs.append((name, layer, xs))
        return outputs

    def _input_grad(self, dy: np.ndarray) -> np.ndarray:
        """δ at the input from δ at the output, through the caches of ``_layer_outputs``
        (the same steps as Sequential.backward with ``input_grad=True``)."""
        children = self._children()
        if not children:
            return self.model.backward(dy, input_grad=True)
        for _, layer in reversed(children):
            dy = layer.backward(dy, input_grad=True)
        return dy

    def summary(self) -> dict[str, Any]:
        """The model's layers (name, type, output shape, parameters) and its run metadata."""
        layers = []
        shape: tuple[int, ...] = (1, *self.input_shape)
        with self.lock:
            for name, layer in self._children():
                shape = layer.output_shape(shape)
                layers.append(
                    {"name": name, "type": type(layer).__name__, "label": layer.label(),
                     "output_shape": list(shape[1:]), "parameters": layer.num_parameters()}
                )  # fmt: skip
        return {
            "model": self.meta.get("model"),
            "data": self.meta.get("data"),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "parameters": self.model.num_parameters(),
            "test_accuracy": self.meta.get("test_accuracy"),
            "standardized": self.standardizer is not None,
            "recipe": self.recipe,
            "layers": layers,
        }


def _blas_controller() -> Any:
    """threadpoolctl's handle on the BLAS NumPy loaded (scikit-learn's dependency), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    blas = ThreadpoolController().select(user_api="blas")
    return blas if blas.lib_controllers else None


def rounded(a: np.ndarray, digits: int = 5) -> Any:
    """An array as nested lists of floats with ``digits`` significant digits (smaller JSON)."""
    a = np.asarray(a, dtype=np.float64)
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if not math.isfinite(scale) or scale == 0:
        return np.nan_to_num(a).tolist()
    decimals = max(0, digits - 1 - math.floor(math.log10(scale)))
    return np.round(a, decimals).tolist()


def _layer_view(name: str, layer: Any, y: np.ndarray) -> dict[str, Any]:
    """One layer's output for the page: maps ``(C, H, W)`` as images, anything else as bars."""
    view: dict[str, Any] = {"name": name, "type": type(layer).__name__, "shape": list(y.shape)}
    if y.ndim == 3:
        view["kind"] = "maps"
        view["data"] = rounded(y[:MAX_MAP_CHANNELS], 3)
    elif y.ndim == 2:  # 1D feature maps (C, L): each channel a one-row image
        view["kind"] = "maps"
        view["data"] = rounded(y[:MAX_MAP_CHANNELS, None, :], 3)
    elif y.ndim == 4:  # volumes (C, D, H, W): the middle slice of each map
        view["kind"] = "maps"
        view["data"] = rounded(y[:MAX_MAP_CHANNELS, y.shape[1] // 2], 3)
    else:
        view["kind"] = "vector"
        view["data"] = rounded(y.reshape(-1)[:MAX_VECTOR], 3)
    return view
