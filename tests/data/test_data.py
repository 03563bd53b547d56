"""deltanet.data: validation, batching, splits, normalisation and the load_dataset entry point."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.data import (
    DATASETS,
    Dataset,
    Standardizer,
    batches,
    data_root,
    load_dataset,
    split_indices,
    train_val_split,
    validate_arrays,
)


def _xy(n=23, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2, 3)).astype(np.float32)
    return x, np.arange(n) % classes


# --- validate_arrays ----------------------------------------------------------------------
def test_validate_accepts_good_arrays():
    x, y = _xy()
    validate_arrays(x, y, num_classes=3)
    validate_arrays(x.astype(np.uint8), y.astype(np.float64), where="w")  # whole-number floats


@pytest.mark.parametrize(
    "x, y, num_classes, match",
    [
        (np.zeros((4, 2)), np.array([0, 1, 2, 3]), 3, r"labels must be in \[0, 3\).*Received 3"),
        (np.zeros((4, 2)), np.array([0, -1, 1, 1]), None, r"labels must be >= 0.*index 1"),
        (np.zeros((4, 2)), np.array([0, 0.5, 1, 1]), None, r"labels must be integers.*0.5"),
        (np.zeros((4, 2)), np.array([0, np.nan, 1, 1]), None, "labels must be integers"),
        (np.zeros((4, 2)), np.array(["a"] * 4), None, "labels must be integers.*dtype <U1"),
        (np.zeros((4, 2)), np.array([0, 1, 1]), None, r"y must have shape \(N,\) = \(4,\)"),
        (np.zeros((4, 2)), np.zeros((4, 1), int), None, r"Received shape \(4, 1\)"),
        (np.zeros(4), np.zeros(4, int), None, r"x must have shape \(N, \.\.\.\)"),
        (np.zeros((0, 3)), np.zeros(0, int), None, "N >= 1"),
        (np.full((4, 2), "a"), np.zeros(4, int), None, "x must hold real numbers"),
        (np.zeros((4, 2), complex), np.zeros(4, int), None, "x must hold real numbers"),
    ],
)
def test_validate_rejects(x, y, num_classes, match):
    with pytest.raises(ValueError, match="where: .*" + match):
        validate_arrays(x, y, num_classes=num_classes, where="where")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_rejects_non_finite_x_and_says_where(bad):
    x = np.zeros((3, 2, 2), np.float32)
    x[1, 0, 1] = bad
    with pytest.raises(ValueError, match=r"train.npz: x must be finite.*index \(1, 0, 1\)"):
        validate_arrays(x, np.zeros(3, int), where="train.npz")


def test_validate_rejects_non_arrays():
    with pytest.raises(TypeError, match="numpy arrays.*x list"):
        validate_arrays([[0.0]], np.zeros(1, int))


# --- batches ------------------------------------------------------------------------------
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_example_once(shuffle, drop_last):
    x, y = _xy(23)
    got = list(batches(x, y, 5, shuffle=shuffle, rng=np.random.default_rng(1), drop_last=drop_last))
    sizes = [len(b[1]) for b in got]
    assert sizes == ([5] * 4 if drop_last else [5] * 4 + [3])
    xs = np.concatenate([b[0] for b in got])
    ys = np.concatenate([b[1] for b in got])
    if not shuffle:
        np.testing.assert_array_equal(xs, x[: len(xs)])
    # every row is its own (x, y) pair, and no example is repeated
    rows = {tuple(r.ravel()) for r in xs}
    assert len(rows) == len(xs)
    order = [int(np.flatnonzero((x == r).all(axis=(1, 2)))[0]) for r in xs]
    np.testing.assert_array_equal(y[order], ys)


def test_batches_same_generator_state_same_batches_and_shuffle_changes_order():
    x, y = _xy(40)
    a = [b[1] for b in batches(x, y, 8, rng=np.random.default_rng(7))]
    b = [b[1] for b in batches(x, y, 8, rng=np.random.default_rng(7))]
    rng = np.random.default_rng(7)
    epoch1 = np.concatenate([b[1] for b in batches(x, np.arange(40), 8, rng=rng)])
    epoch2 = np.concatenate([b[1] for b in batches(x, np.arange(40), 8, rng=rng)])
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(epoch1, np.arange(40))
    assert not np.array_equal(epoch1, epoch2)  # the Generator advances between epochs
    np.testing.assert_array_equal(np.sort(epoch2), np.arange(40))


def test_batches_without_shuffle_are_views_and_y_may_be_none():
    x, _ = _xy(10)
    got = list(batches(x, None, 4, shuffle=False))
    assert [b[1] for b in got] == [None] * 3
    assert all(np.shares_memory(b[0], x) for b in got)
    assert [len(b[0]) for b in got] == [4, 4, 2]


def test_batches_drop_last_with_fewer_examples_than_a_batch_yields_nothing():
    x, y = _xy(3)
    assert list(batches(x, y, 4, drop_last=True, rng=0)) == []


@pytest.mark.parametrize(
    "batch_size, err, match",
    [(0, ValueError, ">= 1. Received: 0"), (2.0, TypeError, "int"), (True, TypeError, "int")],
)
def test_batches_bad_batch_size(batch_size, err, match):
    x, y = _xy()
    with pytest.raises(err, match=match):
        next(batches(x, y, batch_size))


def test_batches_length_mismatch():
    x, y = _xy(10)
    with pytest.raises(ValueError, match="same number of examples. Received: 10 and 9"):
        next(batches(x, y[:9], 4))


# --- splits -------------------------------------------------------------------------------
def test_split_indices_stratified_counts_and_partition():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    keep, held = split_indices(y, 0.2, seed=3)
    assert len(held) == 20 and len(keep) == 80  # ceil(0.2 * 100)
    np.testing.assert_array_equal(np.sort(np.concatenate([keep, held])), np.arange(100))
    np.testing.assert_array_equal(np.bincount(y[held], minlength=4), [10, 6, 3, 1])
    assert np.all(np.diff(keep) > 0) and np.all(np.diff(held) > 0)


def test_split_indices_largest_remainder_matches_ceil_total():
    y = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    keep, held = split_indices(y, 0.2)
    assert (len(keep), len(held)) == (1437, 360)
    per_class = np.bincount(y[held])
    assert np.all(np.abs(per_class - 0.2 * np.bincount(y)) < 1)


def test_split_indices_deterministic_and_seed_dependent():
    y = np.arange(200) % 5
    a, b, c = (split_indices(y, 0.25, seed=s)[1] for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    _, held = split_indices(y, 0.25, seed=1, stratify=False)
    assert len(held) == 50


@pytest.mark.parametrize("fraction, n", [(0.0, 10), (1.0, 10), (-0.1, 10), (0.5, 1), (0.01, 1)])
def test_split_indices_bad_fraction(fraction, n):
    with pytest.raises(ValueError, match="fraction|hold out"):
        split_indices(np.zeros(n, int), fraction)


def test_train_val_split_keeps_pairs_together():
    x, y = _xy(50, classes=5)
    x[:, 0, 0] = np.arange(50)  # tag each row by its index
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, 0.2, seed=4)
    assert (len(x_tr), len(x_val)) == (40, 10)
    np.testing.assert_array_equal(y_tr, y[x_tr[:, 0, 0].astype(int)])
    np.testing.assert_array_equal(y_val, y[x_val[:, 0, 0].astype(int)])
    np.testing.assert_array_equal(np.bincount(y_val), [2] * 5)
    with pytest.raises(ValueError, match="same number of examples"):
        train_val_split(x, y[:-1])


# --- Standardizer -------------------------------------------------------------------------
def test_standardizer_per_channel_and_per_feature():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 3, 4, 5)) * [[[2.0]], [[0.5]], [[3.0]]] + 7).astype(np.float32)
    s = Standardizer.fit(x)
    assert s.mean.shape == (3, 1, 1)
    z = s.transform(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-5)
    f = Standardizer.fit(x, per_feature=True)
    assert f.mean.shape == (3, 4, 5)
    np.testing.assert_allclose(f.transform(x).std(axis=0), 1, atol=1e-4)


def test_standardizer_constant_channel_dict_roundtrip_and_errors():
    x = np.ones((8, 2, 3), np.float64)
    x[:, 1] = np.arange(8)[:, None]
    s = Standardizer.fit(x)
    z = s.transform(x)
    np.testing.assert_array_equal(z[:, 0], 0)  # shifted, not divided by a zero std
    r = Standardizer.from_dict(s.to_dict())
    np.testing.assert_array_equal(r.transform(x), z)
    assert s.transform(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="Received x of shape"):
        s.transform(np.ones((8, 5, 3)))
    with pytest.raises(ValueError, match="keys 'mean' and 'std'"):
        Standardizer.from_dict({"mean": s.mean})
    with pytest.raises(ValueError, match="std > 0"):
        Standardizer.from_dict({"mean": s.mean, "std": np.zeros_like(s.std)})
    with pytest.raises(ValueError, match=r"\(N, \.\.\.\)"):
        Standardizer.fit(np.ones(5))


# --- load_dataset -------------------------------------------------------------------------
def test_unknown_dataset_lists_valid_names():
    with pytest.raises(
        ValueError,
        match="Unknown dataset 'cifar'.*digits, mnist, mnist1d, volumes, "
        "fashion_mnist, cifar10.*or a folder of images",
    ):
        load_dataset("cifar")
    assert DATASETS == ("digits", "mnist", "mnist1d", "volumes", "fashion_mnist", "cifar10")


def test_data_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("DELTANET_DATA")
    assert data_root().parts[-2:] == (".cache", "deltanet")


def test_dataset_repr_is_short():
    x, y = _xy(10)
    d = Dataset("toy", x, y, x, y, 3, (2, 3), ["a", "b", "c"])
    expected = "Dataset(name='toy', train=10, test=10, input_shape=(2, 3), num_classes=3)"
    assert repr(d) == expected
