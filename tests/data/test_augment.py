"""Augmentation transforms against a naive per-example loop; specs, shapes and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.data.augment import (
    Compose,
    Normalize,
    RandomCrop,
    RandomFlip,
    RandomShift,
    augment_rng,
    check_augment,
    parse_augment,
)


def batch(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --- each transform against a loop over the examples --------------------------------------


def naive_crop(x, p, rng):
    offsets = rng.integers(0, 2 * p + 1, size=(x.ndim - 2, len(x)))
    out = np.empty_like(x)
    for n in range(len(x)):
        padded = np.zeros((x.shape[1], *(s + 2 * p for s in x.shape[2:])), x.dtype)
        padded[(slice(None), *(slice(p, p + s) for s in x.shape[2:]))] = x[n]
        window = tuple(slice(o, o + s) for o, s in zip(offsets[:, n], x.shape[2:]))
        out[n] = padded[(slice(None), *window)]
    return out


def naive_flip(x, rng, p=0.5):
    flip = rng.random(len(x)) < p
    return np.stack([x[n, ..., ::-1] if flip[n] else x[n] for n in range(len(x))])


def naive_shift(x, s_max, rng, mode):
    shifts = rng.integers(-s_max, s_max + 1, size=len(x))
    out = np.zeros_like(x)
    length = x.shape[-1]
    for n, s in enumerate(shifts):
        for i in range(length):  # x[..., i] moves to i + s
            j = i + s
            if mode == "circular":
                out[n, :, j % length] = x[n, :, i]
            elif 0 <= j < length:
                out[n, :, j] = x[n, :, i]
    return out


@pytest.mark.parametrize("shape", [(7, 2, 5, 6), (5, 1, 4, 5, 3)])  # images and volumes
@pytest.mark.parametrize("p", [1, 2])
def test_crop_matches_a_loop(shape, p):
    x = batch(shape)
    out = RandomCrop(p)(x, np.random.default_rng(3))
    np.testing.assert_array_equal(out, naive_crop(x, p, np.random.default_rng(3)))


def test_flip_matches_a_loop():
    x = batch((9, 3, 4, 5))
    out = RandomFlip()(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out, naive_flip(x, np.random.default_rng(1)))
    assert RandomFlip(0.0)(x, np.random.default_rng(1)) is not x
    np.testing.assert_array_equal(RandomFlip(1.0)(x, np.random.default_rng(1)), x[..., ::-1])


@pytest.mark.parametrize("mode", ["circular", "zeros"])
@pytest.mark.parametrize("s", [1, 3])
def test_shift_matches_a_loop(mode, s):
    x = batch((11, 2, 8))
    out = RandomShift(s, mode)(x, np.random.default_rng(2))
    np.testing.assert_array_equal(out, naive_shift(x, s, np.random.default_rng(2), mode))


def test_normalize_per_channel_and_for_all_channels():
    x = batch((4, 3, 2, 2))
    out = Normalize([0.5, -1.0, 2.0], [2.0, 0.5, 4.0])(x, np.random.default_rng(0))
    for c, (m, s) in enumerate([(0.5, 2.0), (-1.0, 0.5), (2.0, 4.0)]):
        np.testing.assert_allclose(out[:, c], (x[:, c] - m) / s, rtol=1e-6)
    np.testing.assert_allclose(Normalize(1.0, 2.0)(x, None), (x - 1) / 2, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "spec, shape", [("crop2,flip,norm0.1/0.3", (6, 3, 5, 5)), ("shift2z,shift3", (6, 2, 9))]
)
def test_shape_and_dtype_kept_input_untouched(dtype, spec, shape):
    x = batch(shape, dtype)
    before = x.copy()
    out = parse_augment(spec)(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == dtype
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, before)


def test_same_generator_state_same_batch_and_different_seeds_differ():
    x = batch((32, 1, 8, 8))
    t = parse_augment("crop2,flip")
    a, b = (t(x, np.random.default_rng(5)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(6)))


def test_augment_rng_is_its_own_stream_and_leaves_the_seed_alone():
    g = np.random.default_rng(0)
    state = g.bit_generator.state
    a = augment_rng(g)
    assert g.bit_generator.state == state  # nothing was drawn from the shuffling Generator
    assert a.random() == augment_rng(np.random.default_rng(0)).random()  # equal states, equal
    g.random()
    assert augment_rng(np.random.default_rng(0)).random() != augment_rng(g).random()  # moved on
    mt = np.random.Generator(np.random.MT19937(0))  # any bit generator (its state holds arrays)
    assert (
        augment_rng(mt).random() == augment_rng(np.random.Generator(np.random.MT19937(0))).random()
    )
    assert augment_rng(0).random() != np.random.default_rng(0).random()
    assert augment_rng(0).random() == augment_rng(0).random() != augment_rng(1).random()


# --- specs --------------------------------------------------------------------------------


def test_specs_parse_and_print_back():
    spec = "crop4,flip,shift3,shift5z,norm0.5:0.25:1/2:3:4"
    t = parse_augment(spec)
    assert [type(s) for s in t.transforms] == [RandomCrop, RandomFlip, RandomShift,
                                               RandomShift, Normalize]  # fmt: skip
    assert t.spec == spec and parse_augment(t.spec).spec == spec
    assert t.transforms[3] == RandomShift(5, "zeros")
    assert parse_augment("none").spec == "none" and len(parse_augment("")) == 0
    assert parse_augment(" crop4 , flip ").spec == "crop4,flip"
    assert Compose([RandomFlip(), np.negative]).spec == "flip,negative"


@pytest.mark.parametrize(
    "spec, match",
    [
        ("flop", "unknown transform 'flop'. Valid: crop<P>"),
        ("crop", "unknown transform 'crop'"),
        ("crop0", "'crop0': RandomCrop: padding must be an integer >= 1. Received: 0"),
        ("shift-2", "unknown transform 'shift-2'"),
        ("norm1/0", "std positive"),
        ("norm1:2/1:2:3", "2 means and 3 stds"),
        ("crop4,none", "unknown transform 'none'"),
    ],
)
def test_bad_specs_name_the_part(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_augment(spec)


def test_bad_arguments():
    with pytest.raises(TypeError, match="parse_augment: spec must be a str. Received: int"):
        parse_augment(4)
    with pytest.raises(TypeError, match="every transform must be callable"):
        Compose([RandomFlip(), "crop4"])
    with pytest.raises(ValueError, match="mode must be 'circular' or 'zeros'"):
        RandomShift(2, "reflect")
    with pytest.raises(ValueError, match="p must be in"):
        RandomFlip(1.5)


# --- checks against the data's shape ------------------------------------------------------


@pytest.mark.parametrize(
    "spec, shape, match",
    [
        ("flip", (1, 40), r"'flip' needs examples of shape \(C, H, W\) \(images\). Received: "
                          r"examples of shape \(1, 40\). For 1D signals"),
        ("crop4", (1, 40), r"'crop4' needs .* Received: examples of shape \(1, 40\). .*shift4z"),
        ("shift3", (1, 8, 8), r"'shift3' needs examples of shape \(C, L\) .* \(1, 8, 8\). "
                              r"For images use crop3"),
        ("crop8", (1, 8, 8), r"'crop8': the padding must be smaller .* padding 8"),
        ("shift40", (1, 40), r"'shift40': the shift must be smaller .* max_shift 40"),
        ("norm0.1:0.2:0.3/1", (1, 8, 8), r"'norm0.1:0.2:0.3/1' needs examples of shape \(3, "),
        ("flip", (64,), r"'flip' needs .* Received: examples of shape \(64,\)"),
    ],
)  # fmt: skip
def test_check_refuses_what_does_not_fit_the_data(spec, shape, match):
    with pytest.raises(ValueError, match=match):
        check_augment(parse_augment(spec), shape)


def test_check_accepts_what_fits():
    check_augment(parse_augment("crop4,flip,norm0.5:0.5:0.5/0.2"), (3, 32, 32))
    check_augment(parse_augment("shift10,shift3z,norm0/1"), (1, 40))
    check_augment(parse_augment("crop1"), (1, 4, 4, 4))
    check_augment([np.negative], (5,))  # a transform of one's own, without check(), passes
