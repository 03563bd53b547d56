"""CIFAR-10 (binary batches, the archive, downloads) and Fashion-MNIST, offline: small files
the tests write in the real formats, damaged ones, and a fake opener in place of the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import urllib.request

import numpy as np
import pytest

from deltanet.data import load_dataset
from deltanet.data.cifar10 import (
    ARCHIVE,
    CIFAR10_SHA256,
    CLASSES,
    FOLDER,
    MEMBERS,
    RECORD,
    extract_cifar10,
    load_cifar10,
)
from deltanet.data.mnist import FASHION_CLASSES, FASHION_SHA256, IMAGES_MAGIC, LABELS_MAGIC

NAMES = "\n".join(CLASSES) + "\n"


def cifar_batch(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` records of the binary format: label byte, then 3072 pixel bytes (R, G, B planes)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.uint8) % 10
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return raw.tobytes(), images, labels


def write_cifar10(directory, n_train=(6, 6, 6, 6, 6), n_test=10) -> dict[str, bytes]:
    """The batch files of a small CIFAR-10 in ``directory``; returns their bytes by name."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {f"data_batch_{i + 1}.bin": cifar_batch(n, seed=i)[0] for i, n in enumerate(n_train)}
    files["test_batch.bin"] = cifar_batch(n_test, seed=9)[0]
    files["batches.meta.txt"] = NAMES.encode()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return files


def tar_gz(path, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_cifar10_reads_binary_batches(tmp_path):
    write_cifar10(tmp_path / FOLDER)
    d = load_dataset("cifar10", data_dir=tmp_path)
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_test.shape == (10, 3, 32, 32)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    _, images, labels = cifar_batch(6, seed=0)
    np.testing.assert_allclose(d.x_train[:6] * 255, images, atol=1e-4)  # R, G, B planes
    np.testing.assert_array_equal(d.y_train[:6], labels)
    assert d.class_names == CLASSES and d.input_shape == (3, 32, 32)
    assert load_dataset("cifar10", data_dir=tmp_path, image_size=28).input_shape == (3, 28, 28)


def test_cifar10_default_directory_and_missing_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"CIFAR-10 files missing in {tmp_path}.*download"):
        load_cifar10()
    write_cifar10(tmp_path / "cifar10")  # the batches directly in the directory
    assert len(load_cifar10().y_test) == 10


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda b: b[:-7], r"truncated or damaged: \d+ bytes is not a whole number of 3073-byte"),
        (lambda b: b + b"\x00", "not a whole number"),
        (lambda b: b"", "not a whole number"),
        (lambda b: bytes([12]) + b[1:], r"labels must be in \[0, 10\).*Received 12 at index 0"),
    ],
)
def test_cifar10_rejects_damaged_batches_naming_the_file(tmp_path, damage, match):
    write_cifar10(tmp_path)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=match) as err:
        load_cifar10(tmp_path)
    assert str(path) in str(err.value)


def test_cifar10_extracts_the_archive_once(tmp_path):
    files = write_cifar10(tmp_path / "src")
    members = {f"{FOLDER}/{k}": v for k, v in files.items()}
    members[f"{FOLDER}/readme.html"] = b"<html/>"  # other members are skipped
    (tmp_path / "c").mkdir()
    tar_gz(tmp_path / "c" / ARCHIVE, members)
    d = load_cifar10(tmp_path / "c")
    assert len(d.y_train) == 30
    assert sorted(os.listdir(tmp_path / "c" / FOLDER)) == sorted(MEMBERS)


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"../evil.bin": b"x"}, r"unsafe member path '\.\./evil\.bin'"),
        ({f"{FOLDER}/../../evil.bin": b"x"}, "unsafe member path"),
        ({"/etc/evil": b"x"}, "unsafe member path"),
    ],
)
def test_cifar10_archive_refuses_path_traversal(tmp_path, extra, match):
    files = write_cifar10(tmp_path / "src")
    members = {**extra, **{f"{FOLDER}/{k}": v for k, v in files.items()}}
    tar_gz(tmp_path / ARCHIVE, members)
    with pytest.raises(ValueError, match=match):
        extract_cifar10(tmp_path / ARCHIVE, tmp_path / "out")
    assert os.listdir(tmp_path / "out") == [] and not (tmp_path.parent / "evil.bin").exists()


def test_cifar10_damaged_archive_leaves_nothing(tmp_path):
    files = write_cifar10(tmp_path / "src")
    data = tar_gz(tmp_path / ARCHIVE, {f"{FOLDER}/{k}": v for k, v in files.items()})
    (tmp_path / ARCHIVE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{ARCHIVE}: not a readable"):
        load_cifar10(tmp_path)
    assert os.listdir(tmp_path / FOLDER) == []
    del files["test_batch.bin"]
    tar_gz(tmp_path / ARCHIVE, {f"{FOLDER}/{k}": v for k, v in files.items()})
    with pytest.raises(ValueError, match="the archive lacks test_batch.bin"):
        load_cifar10(tmp_path)
    assert os.listdir(tmp_path / FOLDER) == []
    big = tarfile.TarInfo(f"{FOLDER}/data_batch_1.bin")
    big.size = 10_001 * RECORD  # claims more than a batch: refused before reading
    with tarfile.open(tmp_path / ARCHIVE, "w:gz") as tar:
        tar.addfile(big, io.BytesIO(bytes(big.size)))
    with pytest.raises(ValueError, match="more than a CIFAR-10 batch"):
        load_cifar10(tmp_path)


class FakeOpener:
    """``opener(url, timeout=...)`` serving ``payloads`` by file name; records the URLs."""

    def __init__(self, payloads):
        self.payloads, self.urls = payloads, []

    def __call__(self, url, timeout=None):
        self.urls.append(url)
        return io.BytesIO(self.payloads[url.rsplit("/", 1)[1]])


def test_cifar10_download_checks_sha256_and_never_touches_the_cache_on_mismatch(
    tmp_path, monkeypatch
):
    files = write_cifar10(tmp_path / "src")
    archive = tar_gz(tmp_path / "src.tgz", {f"{FOLDER}/{k}": v for k, v in files.items()})
    opener = FakeOpener({ARCHIVE: archive})
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "keep.txt").write_text("already here")
    with pytest.raises(OSError, match=f"Could not download {ARCHIVE}.*SHA-256 mismatch"):
        load_cifar10(cache, download=True)  # the official hash: our fake archive fails it
    assert sorted(os.listdir(cache)) == ["keep.txt"]  # no partial file, nothing replaced
    sums = {ARCHIVE: hashlib.sha256(archive).hexdigest()}
    monkeypatch.setattr("deltanet.data.cifar10.CIFAR10_SHA256", sums)
    d = load_dataset("cifar10", data_dir=cache, download=True)
    assert (
        len(d.y_test) == 10
        and opener.urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"] * 2
    )
    load_cifar10(cache, download=True)
    assert len(opener.urls) == 2  # extracted once: never downloaded again


def test_official_checksums():
    assert CIFAR10_SHA256[ARCHIVE].startswith("c4a38c50")
    assert len(FASHION_SHA256) == 4
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in FASHION_SHA256.values())


# --- Fashion-MNIST -------------------------------------------------------------------------------
def _idx(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_with_its_class_names(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    payloads = {}
    for stem, n in (("train", 20), ("t10k", 10)):
        payloads[f"{stem}-images-idx3-ubyte.gz"] = _idx(
            rng.integers(0, 256, (n, 28, 28)), IMAGES_MAGIC
        )
        payloads[f"{stem}-labels-idx1-ubyte.gz"] = _idx(np.arange(n) % 10, LABELS_MAGIC)
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST files missing in .*fashion_mnist"):
        load_dataset("fashion_mnist")
    opener = FakeOpener(payloads)
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    with pytest.raises(OSError, match="SHA-256 mismatch"):  # the official hashes
        load_dataset("fashion_mnist", download=True)
    assert os.listdir(tmp_path / "fashion_mnist") == []
    sums = {k: hashlib.sha256(v).hexdigest() for k, v in payloads.items()}
    monkeypatch.setattr("deltanet.data.mnist.FASHION_SHA256", sums)
    d = load_dataset("fashion_mnist", download=True)
    assert d.name == "fashion_mnist" and d.x_train.shape == (20, 1, 28, 28)
    assert d.class_names == FASHION_CLASSES and d.class_names[0] == "T-shirt/top"
    assert opener.urls[-1].startswith("https://raw.githubusercontent.com/zalandoresearch/")
