"""Winograd convolution for 3x3 stride-1 2-D layers: F(2x2, 3x3) and F(4x4, 3x3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), after Winograd's
minimal filtering algorithms. An ``m x m`` output tile of a 3x3 correlation is computed from an
``alpha x alpha`` input tile ``d`` (``alpha = m + 2``) as

    Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A

and summed over input channels in the transformed domain: for each of the ``alpha²`` positions
ξ, ``M[ξ] = U[ξ] @ V[ξ]`` with ``U[ξ] (C_out, C_in)`` the transformed kernels and
``V[ξ] (C_in, tiles)`` the transformed input tiles: ``alpha²`` batched GEMMs (16 for F(2x2),
36 for F(4x4)) instead of one GEMM over 9-times-copied windows, with 2.25 times (F(4x4)) fewer
multiplications. The matrices below are Lavin & Gray's (their section 4.1 for F(2x2, 3x3) and
section 4.2 for F(4x4, 3x3), interpolation points 0, ±1, ±2 and ∞).

Backward (``docs/convolution.md`` has the derivations): δx is the full correlation of δy with
the kernel rotated by 180° and its in/out channels swapped, so it runs the same algorithm on δy;
``∂L/∂W`` goes back through the transforms: ``δM = A δY Aᵀ`` per tile, ``δU[ξ] = δM[ξ] V[ξ]ᵀ``
(the same batched GEMMs, transposed), ``∂L/∂g = Gᵀ δU G``. Groups are the GEMMs' second batch
axis. The transforms run compiled (``winograd_numba``) when ``enabled()``, else with einsum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deltanet.fast import enabled
from deltanet.ops.window import Window


def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Bᵀ, G, Aᵀ)`` of F(m x m, 3x3) for ``m`` 2 or 4 (float64): Lavin & Gray's."""
    if m == 2:  # alpha = 4 (Lavin & Gray 2016, section 4.1)
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    else:  # alpha = 6, points 0, ±1, ±2, ∞ (Lavin & Gray 2016, section 4.2)
        bt = [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ]
        g = [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    return np.array(bt, float), np.array(g, float), np.array(at, float)


def tile_size(out: Sequence[int]) -> int:
    """``m`` of F(m x m, 3x3): 4 or 2, whichever runs fewer GEMM columns, ``tiles * alpha²``
    (F(2x2) on a tie: its float32 error is smaller)."""
    oh, ow = out
    cost = {m: math.ceil(oh / m) * math.ceil(ow / m) * (m + 2) ** 2 for m in (2, 4)}
    return 4 if cost[4] < cost[2] else 2


def _constants(mat: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """A matrix as a tuple of tuples: the compiled kernels' constants (and their cache key)."""
    return tuple(tuple(float(v) for v in row) for row in mat)


def _tiles_in(
    x: np.ndarray, off: Sequence[int], tiles: Sequence[int], m: int, mat: np.ndarray
) -> np.ndarray:
    """``L d Lᵀ`` for each tile of ``x (N, C, H, W)``: ``(a², C, N*tiles)``.

    Tile ``(i, j)`` is ``s x s`` (``s = L``'s columns) from row ``i*m - off[0]``, column
    ``j*m - off[1]``; cells outside ``x`` are zeros.
    """
    n, c, h, w = x.shape
    (th, tw), (a, s) = tiles, mat.shape
    if enabled():
        from deltanet.fast import winograd_numba

        out = np.empty((a * a, c, n * th * tw), x.dtype)
        kernel = winograd_numba.tiles_in(_constants(mat), x.dtype)
        kernel(np.ascontiguousarray(x), off[0], off[1], th, tw, m, out)
        return out
    # NumPy: the tiles as a strided view of a zero canvas, then two small products
    ch, cw = (th - 1) * m + s, (tw - 1) * m + s
    canvas = np.zeros((n, c, ch, cw), x.dtype)
    r0, c0 = max(0, -off[0]), max(0, -off[1])  # x's first row/col inside the canvas
    sr, sc = max(0, off[0]), max(0, off[1])  # ... and where it lands
    rows, cols = min(h - r0, ch - sr), min(w - c0, cw - sc)
    if rows > 0 and cols > 0:
        canvas[:, :, sr : sr + rows, sc : sc + cols] = x[:, :, r0 : r0 + rows, c0 : c0 + cols]
    view = np.lib.stride_tricks.sliding_window_view(canvas, (s, s), axis=(2, 3))[:, :, ::m, ::m]
    lt = mat.astype(x.dtype)
    v = np.einsum("ik,nctukl,jl->ijcntu", lt, view, lt, optimize=True)
    return np.ascontiguousarray(v).reshape(a * a, c, n * th * tw)


def _tiles_out(
    mm: np.ndarray, n: int, tiles: Sequence[int], at: np.ndarray, b: np.ndarray | None, out
) -> np.ndarray:
    """``Aᵀ m A (+ b)`` for each tile of the GEMMs' ``mm (a², C_out, N*tiles)``, cropped to
    ``out``: ``(N, C_out, *out)``."""
    o = mm.shape[1]
    (th, tw), (r, a) = tiles, at.shape
    if enabled():
        from deltanet.fast import winograd_numba

        y = np.empty((n, o, *out), mm.dtype)
        bias = np.zeros(o, mm.dtype) if b is None else np.ascontiguousarray(b, mm.dtype)
        winograd_numba.tiles_out(_constants(at), mm.dtype)(mm, th, tw, bias, y)
        return y
    t = at.astype(mm.dtype)
    ym = np.einsum("ik,klonuv,jl->nouivj", t, mm.reshape(a, a, o, n, th, tw), t, optimize=True)
    y = ym.reshape(n, o, th * r, tw * r)[:, :, : out[0], : out[1]]
    if b is not None:
        y = y + b.reshape(-1, 1, 1).astype(mm.dtype)
    return np.ascontiguousarray(y)


def _kernels(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``U = G g Gᵀ`` for each ``(out, in)`` kernel: ``(a², C_out, C_g)`` (in float64, then
    w's dtype: the kernels are few)."""
    a = g.shape[0]
    u = np.einsum("ik,ockl,jl->ijoc", g, w.astype(np.float64), g, optimize=True)
    return u.reshape(a * a, *w.shape[:2]).astype(w.dtype)


def _gemms(u: np.ndarray, v: np.ndarray, groups: int) -> np.ndarray:
    """``M[ξ] = U[ξ] V[ξ]`` for every position ξ and group: ``(a², C_out, P)``."""
    if groups == 1:
        return np.matmul(u, v)
    a2, o, cg = u.shape
    ug = u.reshape(a2, groups, o // groups, cg)
    vg = v.reshape(a2, groups, cg, v.shape[-1])
    return np.matmul(ug, vg).reshape(a2, o, -1)


def _tiling(out: Sequence[int], m: int) -> tuple[int, int]:
    return math.ceil(out[0] / m), math.ceil(out[1] / m)


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, win: Window, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """``y = x ⋆ w + b`` by Winograd; also returns the transformed input tiles ``V``, which the
    weight gradient reads (``V.shape[0]`` says the tile size: 16 for F(2x2), 36 for F(4x4))."""
    m = tile_size(win.out)
    bt, g, at = matrices(m)
    tiles = _tiling(win.out, m)
    v = _tiles_in(x, [lo for lo, _ in win.pads], tiles, m, bt)
    mm = _gemms(_kernels(w, g), v, groups)
    return _tiles_out(mm, x.shape[0], tiles, at, b, win.out), v


def backward_data(
    dy: np.ndarray, w: np.ndarray, win: Window, groups: int, x_spatial: Sequence[int]
) -> np.ndarray:
    """``δx``: the full correlation of δy with the kernel rotated by 180°, in/out swapped.

    The padded input's cell ``q`` sees δy's cells ``q - k`` (``k`` the kernel offset), so δx is
    a correlation of δy padded by 2 with the flipped kernel; only the rows and columns of ``x``
    (not of its padding) are computed: δy padded by ``2 - lo`` in front.
    """
    o, cg = w.shape[:2]
    wr = w.reshape(groups, o // groups, cg, 3, 3).transpose(0, 2, 1, 3, 4)
    wr = wr.reshape(groups * cg, o // groups, 3, 3)[:, :, ::-1, ::-1]
    m = tile_size(x_spatial)
    bt, g, at = matrices(m)
    tiles = _tiling(x_spatial, m)
    v = _tiles_in(dy, [2 - lo for lo, _ in win.pads], tiles, m, bt)
    mm = _gemms(_kernels(wr, g), v, groups)
    return _tiles_out(mm, dy.shape[0], tiles, at, None, x_spatial)


def weight_grad(
    dy: np.ndarray, v: np.ndarray, w_shape: Sequence[int], win: Window, groups: int
) -> np.ndarray:
    """``∂L/∂W`` through the transforms: ``δM = A δY Aᵀ`` per tile (δY zero past the output's
    edges), ``δU[ξ] = δM[ξ] V[ξ]ᵀ`` summed over tiles, ``∂L/∂g = Gᵀ δU G``."""
    m = math.isqrt(v.shape[0]) - 2  # alpha² positions: 16 or 36
    _, g, at = matrices(m)
    a = m + 2
    dm = _tiles_in(dy, (0, 0), _tiling(win.out, m), m, at.T)  # (a², C_out, P)
    o, cg = w_shape[:2]
    if groups == 1:
        du = np.matmul(dm, v.transpose(0, 2, 1))
    else:
        dmg = dm.reshape(a * a, groups, o // groups, -1)
        vg = v.reshape(a * a, groups, cg, -1).transpose(0, 1, 3, 2)
        du = np.matmul(dmg, vg)
    du = du.reshape(a, a, o, cg).astype(np.float64)
    return np.einsum("ki,klop,lj->opij", g, du, g, optimize=True).astype(dy.dtype)
