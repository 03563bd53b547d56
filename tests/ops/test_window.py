"""The shared windowing helper: sizes, padding rules, the view and its adjoint."""

import itertools

import numpy as np
import pytest

from deltanet.ops.window import (
    Window,
    as_tuple,
    output_size,
    pad,
    resolve_padding,
    sliding_windows,
    unpad,
    window_adjoint,
)


def test_as_tuple_accepts_int_and_sequence():
    assert as_tuple(3, 2) == (3, 3)
    assert as_tuple((1, 2, 3), 3) == (1, 2, 3)


@pytest.mark.parametrize("bad", [(1, 2), "ab", 1.5, True, (1, 2.0, 3)])
def test_as_tuple_rejects_bad_values(bad):
    with pytest.raises((TypeError, ValueError), match="stride"):
        as_tuple(bad, 3, "stride")


@pytest.mark.parametrize(
    "size,k,s,lo,hi,d,expected",
    [
        (28, 5, 1, 2, 2, 1, 28),
        (28, 5, 1, 0, 0, 1, 24),
        (7, 3, 2, 1, 1, 1, 4),
        (10, 3, 1, 0, 0, 2, 6),
        (5, 7, 1, 0, 0, 1, 0),
        (8, 3, 3, 0, 1, 1, 3),
    ],
)
def test_output_size_formula(size, k, s, lo, hi, d, expected):
    assert output_size(size, k, s, lo, hi, d) == expected


def test_output_size_ceil_mode_never_starts_in_right_padding():
    # 6 inputs, kernel 2, stride 2: floor gives 3; ceil also 3 (no partial window exists).
    assert output_size(6, 2, 2, 0, 0, 1, ceil_mode=True) == 3
    # 7 inputs: the last window covers input 6 and one cell past the end.
    assert output_size(7, 2, 2, 0, 0, 1, ceil_mode=True) == 4
    # With padding 1 on 5 inputs, kernel 2, stride 2: a window would start in the right padding.
    assert output_size(5, 2, 2, 1, 1, 1, ceil_mode=True) == 3


def test_resolve_padding_forms():
    k, s, d = (3, 3), (1, 1), (1, 1)
    assert resolve_padding("valid", (5, 5), k, s, d) == ((0, 0), (0, 0))
    assert resolve_padding(1, (5, 5), k, s, d) == ((1, 1), (1, 1))
    assert resolve_padding((1, 2), (5, 5), k, s, d) == ((1, 1), (2, 2))
    assert resolve_padding(((0, 1), (2, 3)), (5, 5), k, s, d) == ((0, 1), (2, 3))
    # "same" with an even kernel puts the odd cell on the high side.
    assert resolve_padding("same", (5,), (4,), (1,), (1,)) == ((1, 2),)
    # "same" with stride 2: out = ceil(in / 2).
    ((lo, hi),) = resolve_padding("same", (7,), (3,), (2,), (1,))
    assert output_size(7, 3, 2, lo, hi, 1) == 4
    with pytest.raises(ValueError, match="padding"):
        resolve_padding("full", (5,), (3,), (1,), (1,))
    with pytest.raises(ValueError, match="non-negative"):
        resolve_padding(-1, (5,), (3,), (1,), (1,))


def test_pad_unpad_round_trip():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    pads = ((1, 2), (0, 3))
    xp = pad(x, pads, value=-1.0)
    assert xp.shape == (2, 3, 7, 8) and xp.dtype == np.float32
    np.testing.assert_array_equal(unpad(xp, pads), x)
    assert pad(x, ((0, 0), (0, 0))) is x


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_sliding_windows_matches_index_formula(nd):
    rng = np.random.default_rng(nd)
    spatial = (7, 6, 5)[:nd]
    kernel, stride, dilation = (3, 2, 2)[:nd], (2, 1, 3)[:nd], (1, 2, 1)[:nd]
    x = rng.standard_normal((2, 3, *spatial))
    out = tuple(
        output_size(n, k, s, 0, 0, d) for n, k, s, d in zip(spatial, kernel, stride, dilation)
    )
    view = sliding_windows(x, kernel, stride, dilation, out)
    assert view.shape == (2, 3, *out, *kernel)
    for o in itertools.product(*map(range, out)):
        for k in itertools.product(*map(range, kernel)):
            src = tuple(oi * s + ki * d for oi, ki, s, d in zip(o, k, stride, dilation))
            np.testing.assert_array_equal(view[(..., *o, *k)], x[(..., *src)])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_window_adjoint_is_the_transpose_of_the_view(nd):
    # <windows(x), g> == <x, adjoint(g)> for every x and g: the defining property of an adjoint.
    rng = np.random.default_rng(10 + nd)
    spatial = (8, 7, 6)[:nd]
    kernel, stride, dilation = (3, 2, 2)[:nd], (1, 2, 2)[:nd], (2, 1, 1)[:nd]
    out = tuple(
        output_size(n, k, s, 0, 0, d) for n, k, s, d in zip(spatial, kernel, stride, dilation)
    )
    x = rng.standard_normal((2, 3, *spatial))
    g = rng.standard_normal((2, 3, *out, *kernel))
    lhs = np.sum(sliding_windows(x, kernel, stride, dilation, out) * g)
    win = Window(kernel, stride, dilation, ((0, 0),) * nd, out)
    rhs = np.sum(x * window_adjoint(g, win, np.zeros(x.shape)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_window_offsets_slices_and_padded_shape():
    win = Window((2, 3), (2, 1), (1, 2), ((1, 0), (2, 2)), (3, 4))
    assert list(win.offsets())[:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert win.offset_slices((1, 2)) == (slice(1, 6, 2), slice(4, 8, 1))
    assert win.padded_shape((5, 3, 6, 4)) == (5, 3, 7, 8)
    x = np.arange(7 * 8).reshape(7, 8)
    view = sliding_windows(x, win.kernel, win.stride, win.dilation, win.out)
    np.testing.assert_array_equal(x[win.offset_slices((1, 2))], view[..., 1, 2])
