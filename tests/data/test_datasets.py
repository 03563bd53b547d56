"""The named datasets: digits, MNIST (IDX files, downloads), MNIST-1D, volumes, and .npz files."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import urllib.request

import numpy as np
import pytest

from deltanet.data import DataNote, load_dataset
from deltanet.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, download_mnist, load_mnist, read_idx
from deltanet.data.mnist1d import load_mnist1d
from deltanet.data.npz import load_npz
from deltanet.data.volumes import VOLUME_CLASSES, make_volumes

# --- digits -------------------------------------------------------------------------------


def test_digits_shapes_range_and_fixed_stratified_split():
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=123)  # the training seed never moves the test set
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert a.x_train.min() == 0.0 and a.x_train.max() == 1.0
    assert (a.num_classes, a.input_shape, a.class_names[3]) == (10, (1, 8, 8), "3")
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    counts = np.bincount(a.y_test)
    assert counts.min() >= 35 and counts.max() <= 37
    # train and test are disjoint rows of the 1,797 originals
    train_rows = {r.tobytes() for r in a.x_train}
    assert sum(r.tobytes() in train_rows for r in a.x_test) <= 2  # sklearn has a few duplicates


# --- MNIST: IDX files ---------------------------------------------------------------------
def _idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _fake_mnist(directory, n_train=20, n_test=8, gz=False, seed=0):
    """Small IDX files of 28x28 images with the official names; returns the arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write(directory / f"{stem}-images-idx3-ubyte", _idx_bytes(images, IMAGES_MAGIC), gz)
        _write(directory / f"{stem}-labels-idx1-ubyte", _idx_bytes(labels, LABELS_MAGIC), gz)
        arrays[stem] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    arrays = _fake_mnist(tmp_path / "m", gz=gz)
    d = load_dataset("mnist", data_dir=tmp_path / "m")
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (8, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_test.dtype == np.int64
    np.testing.assert_allclose(d.x_train[:, 0] * 255, arrays["train"][0], atol=1e-4)
    np.testing.assert_array_equal(d.y_test, arrays["t10k"][1])
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10


def test_mnist_default_directory_is_under_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path))
    _fake_mnist(tmp_path / "mnist", gz=True)
    assert load_mnist().x_train.shape == (20, 1, 28, 28)


def test_mnist_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST files missing in .*download=True"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "wrong IDX magic number 2049, expected 2051"),
        (lambda b: b[:-5], r"truncated: dims \(20, 28, 28\) need 15680 data bytes, found 15675"),
        (lambda b: b + b"\x00", "longer than its header says"),
        (lambda b: b[:10], "truncated IDX header"),
    ],
)
def test_mnist_rejects_damaged_image_file(tmp_path, damage, match):
    _fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: " + match):
        load_mnist(tmp_path)


def test_mnist_rejects_bad_gzip_count_mismatch_and_bad_labels(tmp_path):
    _fake_mnist(tmp_path, gz=True)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx_bytes(np.zeros(7, np.uint8), LABELS_MAGIC)))
    with pytest.raises(ValueError, match="holds 8 images but .*t10k-labels.* holds 7 labels"):
        load_mnist(tmp_path)
    labels.write_bytes(gzip.compress(_idx_bytes(np.full(8, 12, np.uint8), LABELS_MAGIC)))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: labels must be in \[0, 10\)"):
        load_mnist(tmp_path)
    labels.write_bytes(gzip.compress(_idx_bytes(np.zeros(8, np.uint8), LABELS_MAGIC))[:-9])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: not a valid gzip file"):
        load_mnist(tmp_path)
    labels.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a valid gzip file"):
        read_idx(labels, LABELS_MAGIC)


# --- MNIST: downloads (no network: a fake opener serves generated files) -------------------
def _served_files(tmp_path):
    """The four .gz payloads of a small fake MNIST and their SHA-256 sums."""
    src = tmp_path / "src"
    _fake_mnist(src, gz=True)
    payloads = {p.name: p.read_bytes() for p in src.iterdir()}
    return payloads, {k: hashlib.sha256(v).hexdigest() for k, v in payloads.items()}


class FakeOpener:
    """``opener(url, timeout=...)`` serving ``payloads`` by file name; records the URLs."""

    def __init__(self, payloads, broken_mirror="https://broken/"):
        self.payloads, self.broken, self.urls = payloads, broken_mirror, []

    def __call__(self, url, timeout=None):
        self.urls.append(url)
        if url.startswith(self.broken):
            raise OSError("connection refused")
        return io.BytesIO(self.payloads[url.rsplit("/", 1)[1]])


def test_download_verifies_sha256_and_falls_back_to_the_next_mirror(tmp_path):
    payloads, sums = _served_files(tmp_path)
    opener = FakeOpener(payloads)
    dest = tmp_path / "cache"
    paths = download_mnist(
        dest,
        mirrors=["https://broken/", "https://ok/"],
        checksums=sums,
        opener=opener,
        verbose=False,
    )
    assert sorted(p.name for p in paths) == sorted(sums)
    assert sorted(os.listdir(dest)) == sorted(sums)  # no temporary files left
    assert [u.split("/")[2] for u in opener.urls] == ["broken", "ok"] * 4
    download_mnist(dest, checksums=sums, opener=opener, verbose=False)
    assert len(opener.urls) == 8  # already there: downloaded once only
    assert load_mnist(dest).x_train.shape == (20, 1, 28, 28)


def test_download_rejects_checksum_mismatch_and_leaves_no_partial_file(tmp_path):
    payloads, sums = _served_files(tmp_path)
    sums["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    dest = tmp_path / "cache"
    with pytest.raises(OSError, match="Could not download t10k-labels.*SHA-256 mismatch"):
        download_mnist(
            dest,
            mirrors=["https://a/", "https://b/"],
            checksums=sums,
            opener=FakeOpener(payloads),
            verbose=False,
        )
    assert "t10k-labels-idx1-ubyte.gz" not in os.listdir(dest)
    assert not [n for n in os.listdir(dest) if n.startswith(".")]


def test_download_rejects_oversized_responses(tmp_path, monkeypatch):
    payloads, sums = _served_files(tmp_path)
    monkeypatch.setattr("deltanet.data.mnist.MAX_DOWNLOAD_BYTES", 100)
    with pytest.raises(OSError, match="larger than 100 bytes"):
        download_mnist(
            tmp_path / "c",
            names=["train-images-idx3-ubyte.gz"],
            mirrors=["https://a/"],
            checksums=sums,
            opener=FakeOpener(payloads),
            verbose=False,
        )
    assert os.listdir(tmp_path / "c") == []


def test_load_dataset_downloads_missing_files_through_urlopen(tmp_path, monkeypatch):
    payloads, sums = _served_files(tmp_path)
    opener = FakeOpener(payloads)
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    monkeypatch.setattr("deltanet.data.mnist.MNIST_SHA256", sums)
    dest = tmp_path / "cache"
    _fake_mnist(dest, gz=True)
    (dest / "t10k-images-idx3-ubyte.gz").unlink()
    (dest / "train-labels-idx1-ubyte.gz").unlink()
    d = load_dataset("mnist", data_dir=dest, download=True)
    assert sorted(u.rsplit("/", 1)[1] for u in opener.urls) == [
        "t10k-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert d.x_test.shape == (8, 1, 28, 28)


def test_official_checksums_are_sha256_hex():
    from deltanet.data.mnist import MNIST_SHA256

    assert len(MNIST_SHA256) == 4
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in MNIST_SHA256.values())


# --- MNIST-1D -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist1d_dir(tmp_path_factory):
    """Generate the canonical MNIST-1D once per session into a temporary cache."""
    directory = tmp_path_factory.mktemp("mnist1d")
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    d = load_mnist1d(directory)
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002
    assert random.getstate() == py_state
    return directory, d


def test_mnist1d_generated_offline_with_canonical_sizes(mnist1d_dir):
    _, d = mnist1d_dir
    assert d.x_train.shape == (4000, 1, 40) and d.x_test.shape == (1000, 1, 40)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.num_classes == 10 and d.input_shape == (1, 40)
    assert set(np.unique(d.y_test)) == set(range(10))
    assert abs(float(np.concatenate([d.x_train, d.x_test]).std()) - 1) < 1e-3


def test_mnist1d_second_call_reads_the_cache(mnist1d_dir, monkeypatch):
    directory, d = mnist1d_dir
    assert len(list(directory.glob("mnist1d-*.npz"))) == 1

    def fail(num_samples):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr("deltanet.data.mnist1d._generate", fail)
    again = load_dataset("mnist1d", data_dir=directory)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    np.testing.assert_array_equal(again.y_test, d.y_test)


def test_mnist1d_corrupt_cache_is_regenerated(tmp_path, monkeypatch):
    fake = {
        "x_train": np.zeros((4, 1, 40), np.float32),
        "y_train": np.arange(4),
        "x_test": np.zeros((1, 1, 40), np.float32),
        "y_test": np.arange(1),
    }
    monkeypatch.setattr("deltanet.data.mnist1d._generate", lambda n: fake)
    first = load_mnist1d(tmp_path)
    (path,) = tmp_path.glob("mnist1d-*.npz")
    path.write_bytes(b"garbage")
    again = load_mnist1d(tmp_path)
    assert again.x_train.shape == first.x_train.shape == (4, 1, 40)
    assert np.load(path)["y_train"].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="num_samples must be an int >= 50"):
        load_mnist1d(tmp_path, num_samples=10)


# --- volumes ------------------------------------------------------------------------------
def test_volumes_shapes_balance_and_determinism():
    d = load_dataset("volumes")
    again = load_dataset("volumes", seed=0)
    other = load_dataset("volumes", seed=1)
    assert d.x_train.shape == (1000, 1, 16, 16, 16) and d.x_test.shape == (250, 1, 16, 16, 16)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.class_names == list(VOLUME_CLASSES) and d.num_classes == 5
    np.testing.assert_array_equal(np.bincount(d.y_test), [50] * 5)
    np.testing.assert_array_equal(d.x_train, again.x_train)
    assert not np.array_equal(d.x_train, other.x_train)  # the seed draws the training set
    np.testing.assert_array_equal(d.x_test, other.x_test)  # and never the test set


def test_make_volumes_shapes_are_distinct_per_class():
    x, y = make_volumes(100, rng=3, noise=0.0)
    mask = x[:, 0] > 0
    assert mask.sum(axis=(1, 2, 3)).min() > 20  # every example holds a visible shape
    # the voxel at each shape's centre of mass
    centre = np.array([m[tuple(np.round(np.argwhere(m).mean(axis=0)).astype(int))] for m in mask])
    assert centre[y == 0].all() and not centre[y == 3].any()  # balls are solid, shells hollow
    span = np.array([[np.ptp(np.nonzero(m)[a]) for a in range(3)] for m in mask])
    assert span[y == 2].max(axis=1).min() >= 9  # rods are long along one axis...
    assert span[y == 2].min(axis=1).max() <= 4  # ...and thin across it
    assert (np.sort(span[y == 1], axis=1)[:, 0] <= 3).all()  # plates are thin across one axis
    with pytest.raises(ValueError, match="n >= 1"):
        make_volumes(0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        load_dataset("volumes", seed=-1)


# --- .npz ---------------------------------------------------------------------------------
def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_with_test_arrays_and_class_names(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 1, 4, 4), dtype=np.uint8)
    p = _save(
        tmp_path / "toy.npz",
        x=x,
        y=np.arange(30) % 3,
        x_test=x[:6],
        y_test=np.arange(6) % 3,
        class_names=np.array(["cat", "dog", "eel", "fox"]),
    )
    with pytest.warns(DataNote, match=r"1 of the 4 classes of class_names .* \(3\)"):
        d = load_dataset(p)
    assert d.name == "toy" and d.num_classes == 4 and d.class_names[2] == "eel"
    assert d.x_train.dtype == np.float32 and d.x_train.max() <= 1.0
    np.testing.assert_allclose(d.x_test * 255, x[:6], atol=1e-4)
    assert d.input_shape == (1, 4, 4) and d.y_test.dtype == np.int64


def test_npz_without_test_arrays_holds_out_a_fixed_stratified_fifth(tmp_path):
    x = np.arange(100, dtype=np.float64).reshape(100, 1)
    y = (np.arange(100) % 4).astype(np.float64)  # whole-number float labels are accepted
    p = _save(tmp_path / "d.npz", x=x, y=y)
    a, b = load_npz(p), load_dataset(str(p), seed=5)
    assert (len(a.y_train), len(a.y_test)) == (80, 20)
    np.testing.assert_array_equal(np.bincount(a.y_test), [5] * 4)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not set(a.x_train.ravel()) & set(a.x_test.ravel())
    np.testing.assert_array_equal(a.y_train, a.x_train.ravel().astype(int) % 4)


GOOD = {"x": np.zeros((5, 2)), "y": np.zeros(5, int)}


@pytest.mark.parametrize(
    "arrays, err, match",
    [
        ({"x": np.zeros((4, 2))}, ValueError, "missing array 'y'"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3, int)}, ValueError, r"y must have shape \(N,\)"),
        ({"x": np.zeros((5, 2)), "y": np.array([0, 1, -1, 0, 1])}, ValueError, "must be >= 0"),
        ({"x": np.zeros((5, 2)), "y": np.array([0, 1, 0.5, 0, 1])}, ValueError, "integers"),
        ({"x": np.full((5, 2), np.nan), "y": np.zeros(5, int)}, ValueError, "x must be finite"),
        ({"x": np.full((5, 2), np.inf), "y": np.zeros(5, int)}, ValueError, "x must be finite"),
        ({"x": np.zeros(5), "y": np.zeros(5, int)}, ValueError, r"shape \(N, \.\.\.\)"),
        ({**GOOD, "x_test": np.zeros((2, 2))}, ValueError, "x_test and y_test must come together"),
        (
            {**GOOD, "x_test": np.zeros((2, 3)), "y_test": np.zeros(2, int)},
            ValueError,
            r"x_test examples have shape \(3,\)",
        ),
        (
            {**GOOD, "x_test": np.zeros((2, 2)), "y_test": np.array([0, -3])},
            ValueError,
            r"\(x_test, y_test\): labels must be >= 0",
        ),
        ({**GOOD, "w": np.zeros(1)}, ValueError, r"unexpected arrays \['w'\]"),
        (
            {**GOOD, "y": np.arange(5) % 3, "class_names": np.array(["a", "b"])},
            ValueError,
            "class_names must be a 1-D array of at least 3 strings",
        ),
    ],
)
def test_npz_rejects_bad_contents_naming_the_file(tmp_path, arrays, err, match):
    p = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(err, match="bad.npz.*" + match):
        load_dataset(p)


def test_npz_refuses_pickle_and_non_archives(tmp_path):
    p = _save(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, int))
    with pytest.raises(ValueError, match=r"obj.npz \(array 'x'\): holds object arrays, which need"):
        load_npz(p)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ValueError, match="junk.npz: not an .npz archive"):
        load_dataset(junk)
    with pytest.raises(FileNotFoundError, match="Dataset file not found: .*nope.npz"):
        load_dataset(tmp_path / "nope.npz")
