"""Which path runs for which shape: every threshold of ``deltanet.fast`` in one table.

Each threshold keeps one line saying why; ``docs/performance.md`` has the measurements behind
them. im2col, col2im and max pooling run compiled whenever ``enabled()``: no shape decides those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deltanet.fast import enabled, lift3d
from deltanet.ops.conv import ConvPath
from deltanet.ops.window import Window


@dataclass(frozen=True)
class Thresholds:
    """The numbers the plan decides by (sizes in array elements)."""

    # convolution through the batch in chunks (conv_chunked.py)
    chunk: int = 1 << 19  # a chunk's windows: 2 MB of float32, inside an L3 shared with neighbours
    chunked_from: int = 1 << 21  # batch's windows from which their memory traffic outweighs a loop
    # direct loops over the input (conv_direct.py)
    direct_taps: int = 32  # C_in * kernel cells up to which the direct loops beat the GEMM path
    direct_taps_long: int = 256  # ... up to which they hold their own where chunks re-copy windows
    long_frame: int = 128  # frame cells from which a pass over the frame amortises its fixed cost
    direct_filters_long: int = 32  # filters up to which; more make the GEMM efficient
    frame_ratio: float = 1.5  # frame cells per output cell up to which the wasted cells pay off
    # Winograd F(2x2)/F(4x4) for 3x3 stride-1 layers (winograd.py)
    winograd_auto: bool = False  # "auto" never takes it: the GEMM path measured faster on every
    # 3x3 layer tried, VGG block included (docs/performance.md); algorithm="winograd" by hand
    winograd_channels: int = 32  # C_in/G and C_out/G from which the GEMMs outweigh transforms
    # compiled dot products for small weight gradients (thin_matmul.py)
    thin_out: int = 256  # result cells up to which OpenBLAS splits the product badly over 2 threads
    thin_min_k: int = 4096  # contraction length from which the dot products win
    # max pooling (pool.py): windows with a kernel of their own, unrolled (2, 2x2, 2x2x2: the
    # usual ones; each costs a compile per process, as closures skip numba's disk cache)
    unrolled_pools: tuple[tuple[int, int, int], ...] = ((1, 1, 2), (1, 2, 2), (2, 2, 2))
    # glibc's allocator (memory.py), in bytes: freed arrays up to malloc_mmap come from the heap
    malloc_mmap: int = 32 << 20  # glibc's largest; below it each step's arrays reuse freed heap,
    # not fresh mmap pages that fault on first write (main job 4.3 -> 3.2 ms a step)
    malloc_trim: int = 256 << 20  # free heap kept, not trimmed: a step's arrays fit (LeNet-5 b256)
    # compiled ReLU (activations.py)
    relu_size: int = 1 << 18  # below 1 MB NumPy's passes stay in cache; MLPs skip numba's import


THRESHOLDS = Thresholds()


def frame_cells(padded: Sequence[int], out: Sequence[int]) -> int:
    """Cells of the direct loops' frame: from the first output cell to the last, in the padded
    input's rows (``direct_numba``)."""
    (_, ph, pw), (od, oh, ow) = lift3d(padded), lift3d(out)
    return ((od - 1) * ph + oh - 1) * pw + ow


def _chunked(x_shape: Sequence[int], w_shape: Sequence[int], out: Sequence[int]) -> bool:
    """Whether the batch's windows are large enough for chunks to beat one whole-batch GEMM."""
    return x_shape[0] * math.prod(w_shape[1:]) * math.prod(out) > THRESHOLDS.chunked_from


def _direct(x: np.ndarray, w: np.ndarray, win: Window, groups: int) -> bool:
    """Few taps (or a few more on a long frame with few filters, where the GEMM path would
    chunk and so lay the windows out twice), stride 1, one group, float32/64, numba."""
    t = THRESHOLDS
    taps, frame = math.prod(w.shape[1:]), frame_cells(win.padded_shape(x.shape)[2:], win.out)
    few = taps <= t.direct_taps or (
        taps <= t.direct_taps_long
        and frame >= t.long_frame
        and w.shape[0] <= t.direct_filters_long
        and _chunked(x.shape, w.shape, win.out)
    )
    return (
        groups == 1
        and all(s == 1 for s in win.stride)
        and few
        and x.dtype == w.dtype
        and x.dtype in (np.float32, np.float64)
        and frame <= t.frame_ratio * math.prod(win.out)
        and enabled()
    )


ALGORITHMS = ("auto", "gemm", "winograd", "direct")  # conv layers' ``algorithm`` argument


def winograd_runs(w_shape: Sequence[int], win: Window) -> bool:
    """Whether Winograd can run this convolution: 2-D, 3x3, stride 1, dilation 1."""
    return (
        len(w_shape) == 4
        and tuple(w_shape[2:]) == (3, 3)
        and all(s == 1 for s in win.stride)
        and all(d == 1 for d in win.dilation)
    )


def direct_runs(x: np.ndarray, w: np.ndarray, win: Window, groups: int) -> bool:
    """Whether the direct loops can run this convolution: one group, stride 1, float32/64."""
    return (
        groups == 1
        and all(s == 1 for s in win.stride)
        and x.dtype == w.dtype
        and x.dtype in (np.float32, np.float64)
        and enabled()
    )


def _winograd(x: np.ndarray, w: np.ndarray, win: Window, groups: int) -> bool:
    """3x3 stride 1 with many channels per group, float32/64, compiled transforms (when the
    table's switch is on)."""
    return (
        THRESHOLDS.winograd_auto
        and winograd_runs(w.shape, win)
        and min(w.shape[0] // groups, w.shape[1]) >= THRESHOLDS.winograd_channels
        and x.dtype == w.dtype
        and x.dtype in (np.float32, np.float64)
        and enabled()
    )


def conv_path(
    x: np.ndarray, w: np.ndarray, win: Window, groups: int, algorithm: str = "auto"
) -> ConvPath:
    """The path of a convolution: direct loops, Winograd, the GEMM in chunks, or one GEMM.

    ``algorithm`` other than ``"auto"`` picks by hand (``"gemm"``: the GEMM in chunks or
    whole); ``"winograd"`` and ``"direct"`` raise ValueError where they cannot run.
    """
    if algorithm == "winograd":
        if not winograd_runs(w.shape, win):
            raise ValueError(
                "conv: algorithm='winograd' runs 2-D 3x3 convolutions with stride 1 and "
                f"dilation 1. Received: kernel_size {tuple(w.shape[2:])}, stride {win.stride}, "
                f"dilation {win.dilation}."
            )
        return ConvPath.WINOGRAD
    if algorithm == "direct":
        if not direct_runs(x, w, win, groups):
            raise ValueError(
                "conv: algorithm='direct' runs stride-1 convolutions with one group, float32 "
                "or float64, with numba enabled. Received: stride "
                f"{win.stride}, groups {groups}, dtype {x.dtype}, numba enabled: {enabled()}."
            )
        return ConvPath.DIRECT
    if algorithm not in ALGORITHMS:
        raise ValueError(f"conv: algorithm must be one of {ALGORITHMS}. Received: {algorithm!r}.")
    if algorithm == "auto" and _direct(x, w, win, groups):
        return ConvPath.DIRECT
    if algorithm == "auto" and _winograd(x, w, win, groups):
        return ConvPath.WINOGRAD
    if groups == 1 and _chunked(x.shape, w.shape, win.out):
        return ConvPath.CHUNKED
    return ConvPath.GEMM


def chunk_samples(cols_per_sample: int) -> int:
    """Samples per chunk of the chunked path: as many as fit in one chunk, at least one."""
    return max(1, THRESHOLDS.chunk // max(1, cols_per_sample))


def thin_matmul(a: np.ndarray, b: np.ndarray, n: int) -> bool:
    """Whether ``a (M, K) @ bᵀ`` with ``n`` rows in b runs as compiled dot products."""
    m, k = a.shape
    return (
        m * n <= THRESHOLDS.thin_out
        and k >= THRESHOLDS.thin_min_k
        and a.dtype == b.dtype
        and a.dtype in (np.float32, np.float64)
        and a.flags.c_contiguous
        and b.flags.c_contiguous
        and enabled()
    )


def unrolled_max_pool(kernel: tuple[int, ...]) -> bool:
    """Whether max pooling with this (3-D) window runs a kernel compiled for it alone."""
    return kernel in THRESHOLDS.unrolled_pools


def compiled_relu(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the one-pass ReLU kernels run on ``a`` and ``b``: large, float32/64,
    C-contiguous, of one shape and dtype."""
    return (
        a.size >= THRESHOLDS.relu_size
        and a.dtype == b.dtype
        and a.dtype in (np.float32, np.float64)
        and a.shape == b.shape
        and a.flags.c_contiguous
        and b.flags.c_contiguous
        and enabled()
    )
