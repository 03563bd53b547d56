"""Memory-mapped datasets in bounded memory (``data.mapped``): statistics streamed over chunks
against the in-memory ``Standardizer.fit``, the derived files (values, reuse, pruning, an
unwritable cache), and the CLI's split and test set of an image folder against the in-memory
path on the same data."""

from __future__ import annotations

import errno
import os
import time

import numpy as np
import pytest

from deltanet.cli.common import standardized
from deltanet.cli.train import _split
from deltanet.data import DataNote, Dataset, Standardizer, load_dataset, mapped
from deltanet.data.mapped import fit_standardizer, is_mapped, mapped_copy
from tests.data.test_folder import make_folder

pytestmark = pytest.mark.filterwarnings("ignore:decoding the:deltanet.data.dataset.DataNote")

SMALL_CHUNKS = 1000  # bytes: a few rows per chunk, so every helper runs over many chunks


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path):
    """``(memmap, the same values in memory)``: (50, 3, 5, 4) float32, a constant channel 2."""
    rng = np.random.default_rng(0)
    x = (rng.random((50, 3, 5, 4)) * 2 + np.arange(3)[None, :, None, None]).astype(np.float32)
    x[:, 2] = 0.5
    path = tmp_path / "src" / "x.f32"
    path.parent.mkdir()
    out = np.memmap(path, np.float32, "w+", shape=x.shape)
    out[:] = x
    out.flush()
    return np.memmap(path, np.float32, "r", shape=x.shape), x


def _derived(m: np.memmap) -> list[str]:
    return sorted(os.listdir(os.path.join(os.path.dirname(str(m.filename)), "derived")))


@pytest.mark.parametrize("per_feature", [False, True])
def test_streamed_statistics_are_the_in_memory_fit_to_the_last_bits(data, per_feature):
    m, x = data
    rows = np.arange(3, 50, 2)
    for r in (None, rows):
        got = fit_standardizer(m, r, per_feature=per_feature, chunk_bytes=SMALL_CHUNKS)
        want = Standardizer.fit(x if r is None else x[r], per_feature=per_feature)
        assert got.mean.shape == want.mean.shape and got.std.shape == want.std.shape
        np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)
        np.testing.assert_allclose(got.std, want.std, rtol=1e-12)
    assert np.all(fit_standardizer(m).std[2] == 1.0)  # a constant channel is not scaled
    with pytest.raises(ValueError, match="at least one example"):
        fit_standardizer(m, np.zeros(0, np.int64))


def test_mapped_copy_values_the_file_and_its_reuse(data, monkeypatch):
    m, x = data
    st, rows = Standardizer.fit(x), np.array([0, 4, 5, 9, 30, 49])
    out = mapped_copy(m, rows, standardizer=st, chunk_bytes=SMALL_CHUNKS)
    assert is_mapped(out) and not out.flags.writeable and out.dtype == np.float32
    np.testing.assert_array_equal(out, st.transform(x[rows]))  # the same arithmetic, per row
    assert _derived(m) == [os.path.basename(str(out.filename))]  # no temporary file left

    def no_write(*args):
        raise AssertionError("the derived file was written again")

    monkeypatch.setattr(mapped, "_write", no_write)
    again = mapped_copy(m, rows, standardizer=st)
    assert again.filename == out.filename
    monkeypatch.undo()
    wide = mapped_copy(m, standardizer=st, dtype=np.float64)  # all rows, another dtype
    np.testing.assert_array_equal(wide, st.transform(x).astype(np.float64))
    plain = mapped_copy(m, rows)  # rows only: the split without standardisation
    np.testing.assert_array_equal(plain, x[rows])
    assert len(_derived(m)) == 3
    assert mapped_copy(m) is m  # nothing to do
    assert mapped_copy(m, np.zeros(0, np.int64)).shape == (0, 3, 5, 4)
    with pytest.raises(TypeError, match="memory-mapped"):
        mapped_copy(x)


def test_least_recently_used_files_and_stale_temporary_files_are_pruned(data, monkeypatch):
    m, _ = data
    monkeypatch.setattr(mapped, "KEEP_DERIVED", 2)
    first = mapped_copy(m, np.array([0, 1]))
    folder = os.path.dirname(str(first.filename))
    stale = os.path.join(folder, ".abandoned.f32.x.tmp")
    open(stale, "wb").close()
    day_ago = time.time() - mapped.STALE_TMP_SECONDS - 60
    os.utime(stale, (day_ago, day_ago))
    os.utime(first.filename, (day_ago, day_ago))
    second = mapped_copy(m, np.array([2, 3]))
    mapped_copy(m, np.array([0, 1]))  # reused: marked as used now, so kept over `second`
    third = mapped_copy(m, np.array([4, 5]))
    names = {os.path.basename(str(f.filename)) for f in (first, third)}
    assert set(_derived(m)) == names and not os.path.exists(str(second.filename))
    np.testing.assert_array_equal(second, np.asarray(m[2:4]))  # still readable: mapped


def test_an_unwritable_cache_gives_a_file_of_this_process_only(data, monkeypatch):
    m, x = data
    st = Standardizer.fit(x)

    def refused(*args):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(mapped, "_write", refused)
    with pytest.warns(DataNote, match="cannot write to .*Permission denied"):
        out = mapped_copy(m, standardizer=st)
    np.testing.assert_array_equal(out, st.transform(x))
    assert not os.path.exists(str(out.filename))  # unlinked: gone when the mapping goes

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mapped, "_write", full)
    with pytest.raises(OSError, match="No space"):  # other errors are the user's to see
        mapped_copy(m, standardizer=st)


@pytest.mark.parametrize(
    "config",
    [
        {"val_fraction": 0.2, "seed": 3, "standardize": True},
        {"val_fraction": 0.0, "seed": 0, "standardize": True},
        {"val_fraction": 0.1, "seed": 1, "standardize": False},
    ],
)
def test_cli_split_of_a_folder_is_the_in_memory_split(tmp_path, config):
    ds = load_dataset(make_folder(tmp_path / "pets", n=12, rgb=True), image_size=9)
    assert is_mapped(ds.x_train) and is_mapped(ds.x_test)
    arrays = {k: np.array(getattr(ds, k)) for k in ("x_train", "y_train", "x_test", "y_test")}
    in_memory = Dataset(ds.name, num_classes=3, input_shape=ds.input_shape, **arrays)
    (x, y), val, st = _split(config, ds)
    (x0, y0), val0, st0 = _split(config, in_memory)
    assert is_mapped(x) and not is_mapped(x0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_allclose(x, x0, rtol=0, atol=1e-6)
    assert (val is None) == (val0 is None) == (config["val_fraction"] == 0)
    if val is not None and val0 is not None:
        np.testing.assert_array_equal(val[1], val0[1])
        np.testing.assert_allclose(val[0], val0[0], rtol=0, atol=1e-6)
    if st is None or st0 is None:
        assert st is st0 is None and (val is not None or x is ds.x_train)
    else:
        np.testing.assert_allclose(st.mean, st0.mean, rtol=1e-12)
        np.testing.assert_allclose(st.std, st0.std, rtol=1e-12)
        np.testing.assert_allclose(
            standardized(ds.x_test, st), standardized(in_memory.x_test, st0), rtol=0, atol=1e-6
        )
