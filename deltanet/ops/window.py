"""N-d sliding windows and their adjoint, for convolution and pooling.

A windowed op is described by one ``Window``: the kernel, stride and dilation per spatial axis,
the padding as ``(lo, hi)`` pairs and the output size. Its forward pass

1. ``pad``s the spatial axes (``resolve_padding`` turns the user's ``padding`` into pairs);
2. reads the padded input through its windows: ``sliding_windows`` views them as
   ``(N, C, *out, *kernel)`` without copying (``im2col.py`` copies them into a GEMM's columns);
3. reduces over the kernel axes (a matmul for convolution, max/mean for pooling).

The backward pass runs the same steps in reverse: the gradient with respect to the windows is
scattered back onto the padded input by ``window_adjoint`` (a loop over kernel offsets, each one
vectorised strided ``+=``, as Chainer's col2im), then ``unpad`` cuts the padding away.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

Pads = tuple[tuple[int, int], ...]


class Window(NamedTuple):
    """The geometry of a windowed op, one entry per spatial axis.

    Output cell ``o`` reads the padded input at ``o*stride + k*dilation`` for each kernel
    offset ``k``.
    """

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: Pads  # (lo, hi) per axis
    out: tuple[int, ...]  # the output size

    def offsets(self) -> Iterator[tuple[int, ...]]:
        """Every kernel offset ``k``, in window order (C order, the flat offset counts up)."""
        return itertools.product(*map(range, self.kernel))

    def offset_slices(self, k: Sequence[int]) -> tuple[slice, ...]:
        """The spatial slices of the padded input that kernel offset ``k`` visits: ``o*s + k*d``."""
        return tuple(
            slice(ki * d, ki * d + s * (o - 1) + 1, s)
            for ki, d, s, o in zip(k, self.dilation, self.stride, self.out)
        )

    def padded_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """``(*lead, *spatial)`` of an input -> the same with the spatial axes padded."""
        lead = tuple(shape[: len(shape) - len(self.pads)])
        spatial = shape[len(shape) - len(self.pads) :]
        return (*lead, *(n + lo + hi for n, (lo, hi) in zip(spatial, self.pads)))


def as_tuple(value: int | Sequence[int], ndim: int, name: str = "value") -> tuple[int, ...]:
    """Normalise an int or a length-``ndim`` sequence of ints to a tuple of ``ndim`` ints."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints. Received: {value!r}.")
    if isinstance(value, (int, np.integer)):
        return (int(value),) * ndim
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of {ndim} ints. Received: {value!r}."
        ) from None
    if len(items) != ndim or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items
    ):
        raise ValueError(f"{name} must be an int or a tuple of {ndim} ints. Received: {value!r}.")
    return tuple(int(v) for v in items)


def output_size(
    size: int,
    kernel: int,
    stride: int,
    pad_lo: int,
    pad_hi: int,
    dilation: int,
    ceil_mode: bool = False,
) -> int:
    """``floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1`` (``ceil`` on request).

    With ``ceil_mode`` (Caffe's pooling) the last window may start in the padding on the right,
    but never past the end of the left-padded input, as in Caffe and PyTorch.
    """
    span = size + pad_lo + pad_hi - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_lo:
        out -= 1
    return out


def resolve_padding(
    padding: int | str | Sequence[int] | Sequence[Sequence[int]],
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Pads:
    """Turn ``padding`` into one ``(lo, hi)`` pair per spatial axis.

    Accepts an int, a tuple of ints (symmetric per axis), a tuple of ``(lo, hi)`` pairs,
    ``"valid"`` (no padding) or ``"same"`` (``out = ceil(in / stride)``; the odd extra cell goes
    on the high side, as PyTorch and TensorFlow do).
    """
    ndim = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            pads = []
            for size, k, s, d in zip(spatial, kernel, stride, dilation):
                out = -(-size // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"padding must be an int, a tuple, 'valid' or 'same'. Received: {padding!r}."
        )
    if (
        not isinstance(padding, (int, np.integer))
        and len(tuple(padding)) == ndim
        and all(isinstance(p, (tuple, list)) for p in padding)
    ):
        pairs = [as_tuple(p, 2, "padding pair") for p in padding]
    else:
        # ints, or pairs of the wrong count that as_tuple rejects (no type tells them apart)
        pairs = [(p, p) for p in as_tuple(padding, ndim, "padding")]  # type: ignore[arg-type]
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"padding must be non-negative. Received: {padding!r}.")
    return tuple((lo, hi) for lo, hi in pairs)  # as_tuple made each pair two ints


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the trailing ``len(pads)`` axes of ``x``; ``x`` itself when there is nothing to pad."""
    if not any(lo or hi for lo, hi in pads):
        return x
    # a filled array and one slice copy: np.pad pads axis by axis (docs/performance.md)
    lead = x.shape[: x.ndim - len(pads)]
    spatial = x.shape[x.ndim - len(pads) :]
    out = np.full((*lead, *(n + lo + hi for n, (lo, hi) in zip(spatial, pads))), value, x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, pads))] = x
    return out


def unpad(x: np.ndarray, pads: Pads) -> np.ndarray:
    """Cut the padding of ``pad`` away again (a view)."""
    lead = (slice(None),) * (x.ndim - len(pads))
    return x[
        lead
        + tuple(slice(lo, x.shape[x.ndim - len(pads) + i] - hi) for i, (lo, hi) in enumerate(pads))
    ]


def sliding_windows(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """A read-only view of shape ``(*lead, *out, *kernel)`` over the trailing spatial axes of ``x``.

    ``view[..., o, k] = x[..., o*stride + k*dilation]`` for each spatial axis; no copy is made.
    """
    nd = len(kernel)
    lead_shape, lead_strides = x.shape[:-nd], x.strides[:-nd]
    sp = x.strides[-nd:]
    shape = (*lead_shape, *out, *kernel)
    strides = (
        *lead_strides,
        *(s * st for s, st in zip(sp, stride)),
        *(s * d for s, d in zip(sp, dilation)),
    )
    return as_strided(x, shape=shape, strides=strides, writeable=False)


def window_adjoint(dwin: np.ndarray, win: Window, dxp: np.ndarray) -> np.ndarray:
    """Adjoint of the window view: scatter-add ``dwin (*lead, *out, *kernel)`` onto ``dxp``.

    ``dxp (*lead, *padded)`` is added into and returned. One strided ``+=`` per kernel offset:
    the input cell ``o*stride + k*dilation`` receives ``dwin[..., o, k]``. Overlapping windows
    add up, which is exactly what the chain rule asks.
    """
    lead = (slice(None),) * (dxp.ndim - len(win.kernel))
    for k in win.offsets():
        dxp[lead + win.offset_slices(k)] += dwin[(Ellipsis,) + k]
    return dxp
