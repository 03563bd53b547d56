"""Your own images: a folder of one subfolder per class (torchvision's ImageFolder layout).

``DIR/<class>/**/<image>.png|.jpg|...``, class names from the subfolder names (sorted); files
of other kinds (``.txt``, ``.DS_Store``) and hidden entries are ignored. With ``DIR/train/``
and ``DIR/test/`` the test set is ``test/``; otherwise a stratified 20% of each class is held
out with the fixed ``SPLIT_SEED`` (the same files in every run).

Memory: every image is decoded once, one at a time, into a float32 memory-mapped cache under
``data_root() / "images" / <key>`` (``x_train.f32``, ``x_test.f32``, ``y_*.npy``,
``meta.json``); the key hashes the files' names, sizes and modification times with the size and
mode asked for, so an edited folder is decoded again. The cache is written in a temporary
directory and renamed into place when complete, so a failed or interrupted decode leaves no
half cache. The returned arrays are read-only ``np.memmap``s: ``fit`` reads its batches from
them, so a folder larger than memory trains in bounded memory (the disk needs 4 bytes per
value; this is checked first). Float32 rather than uint8 because ``fit`` takes float arrays:
a uint8 cache would need a full float copy in memory.

Unreadable images (empty, truncated, corrupt, not an image, more than ``MAX_IMAGE_PIXELS``):
``bad_images="error"`` (the default) refuses the folder naming them; ``"skip"`` leaves them
out with a note naming them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from deltanet.data.dataset import (
    MAX_CLASSES,
    SPLIT_SEED,
    DataNote,
    Dataset,
    count_classes,
    data_root,
    split_indices,
)
from deltanet.data.images import (
    IMAGE_SUFFIXES,
    BadImage,
    check_mode,
    decode_image,
    example_values,
    parse_image_size,
    probe_image,
)

BAD_IMAGES = ("error", "skip")
TEST_FRACTION = 0.2
CACHE_VERSION = 1
SHOW_BAD = 5  # unreadable files named in a message; the rest are counted

Files = list[tuple[Path, int]]


def load_image_folder(
    root: str | os.PathLike,
    *,
    image_size: int | str | tuple[int, int] | None = None,
    image_mode: str | None = None,
    bad_images: str = "error",
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """A ``Dataset`` of the images under ``root``: x float32 ``(N, C, H, W)`` in [0, 1].

    Takes: ``image_size`` (``28``, ``"28x32"`` as HEIGHTxWIDTH, or a pair; default the first
    image's size), ``image_mode`` ("gray" or "rgb"; default gray when every image is),
    ``bad_images`` ("error" or "skip"), ``cache_dir`` (default ``data_root() / "images"``).
    Raises FileNotFoundError (no folder), ValueError naming ``root`` for a layout without
    classes or images, and naming the files when images are unreadable under "error".
    """
    root = Path(root).expanduser().resolve()  # the cache key holds absolute paths
    size, mode = parse_image_size(image_size), check_mode(image_mode)
    if bad_images not in BAD_IMAGES:
        raise ValueError(f"bad_images must be 'error' or 'skip'. Received: {bad_images!r}.")
    if not root.is_dir():
        raise FileNotFoundError(f"No image folder at {root}.")
    class_names, train, test = _layout(root)
    key = _signature(train, test, size, mode)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else data_root() / "images"
    where = cache / key
    if not _cache_ok(where):
        shutil.rmtree(where, ignore_errors=True)  # damaged (a file deleted or cut): decode again
        _build(root, where, class_names, (train, test), size, mode, bad_images)
    return _open_cache(root, where, bad_images)


# --- the folder's layout ---------------------------------------------------------------------
def _layout(root: Path) -> tuple[list[str], Files, Files | None]:
    """Class names, the labelled training files, and the test files when ``train/`` and
    ``test/`` subfolders give them (else None: held out later)."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        names, train = _classes(root / "train", root)
        test_names, test = _classes(root / "test", root)
        unknown = sorted(set(test_names) - set(names))
        if unknown:
            raise ValueError(
                f"{root / 'test'} holds classes that {root / 'train'} lacks: {', '.join(unknown)}."
            )
        index = {n: i for i, n in enumerate(names)}
        return names, train, [(p, index[test_names[y]]) for p, y in test]
    names, train = _classes(root, root)
    return names, train, None


def _classes(folder: Path, root: Path) -> tuple[list[str], Files]:
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name[0] != ".")
    if len(names) < 2:
        loose = sum(
            e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) for e in os.scandir(folder)
        )
        what = f"only the class folder {names[0]!r}" if names else "no class folders"
        what += f" and {loose} image files directly in it" if loose else ""
        raise ValueError(
            f"{folder}: an image folder needs one subfolder per class, at least 2 (e.g. "
            f"{folder}/cat/1.png and {folder}/dog/1.jpg). Found {what}."
        )
    if len(names) > MAX_CLASSES:
        raise ValueError(f"{folder}: {len(names)} class folders, more than {MAX_CLASSES}.")
    files: Files = []
    for label, name in enumerate(names):
        found = _images(folder / name)
        if not found:
            raise ValueError(
                f"{folder / name}: an empty class folder (no {'/'.join(IMAGE_SUFFIXES)} files)."
            )
        files += [(p, label) for p in found]
    return names, files


def _images(folder: Path) -> list[Path]:
    """The image files under ``folder``, recursively, sorted; hidden entries skipped."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d[0] != ".")
        found += [
            Path(top, n) for n in sorted(names)
            if n[0] != "." and n.lower().endswith(IMAGE_SUFFIXES)
        ]  # fmt: skip
    return found


def _signature(train: Files, test: Files | None, size, mode) -> str:
    """The cache key: every file's path, label, size and mtime, and the options asked for."""
    digest = hashlib.sha256(repr((CACHE_VERSION, size, mode, TEST_FRACTION, SPLIT_SEED)).encode())
    for part, files in (("train", train), ("test", test or [])):
        for path, label in files:
            st = path.stat()
            digest.update(f"{part}\0{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


# --- decoding into the cache -------------------------------------------------------------------
def _build(root, where: Path, class_names, parts, size, mode, bad_images) -> None:
    train, test = parts
    everything = train + (test or [])
    good, bad = [], []
    for path, label in everything:
        try:
            good.append((path, label, *probe_image(path)))
        except BadImage as err:
            bad.append((path, str(err)))
    if bad and bad_images == "error":
        _refuse(root, bad)
    if not good:
        raise ValueError(f"{root}: no readable image among {len(everything)} files.")
    size = size or good[0][2]
    mode = mode or ("gray" if all(g[3] for g in good) else "rgb")
    shape = (1 if mode == "gray" else 3, *size)
    example_values(size, mode)
    ok = {p for p, *_ in good}
    if test is None:  # hold out a fixed stratified share of the files, before decoding
        labels = np.array([y for _, y in train])
        keep, held = split_indices(labels, TEST_FRACTION, seed=SPLIT_SEED)
        train, test = [train[i] for i in keep], [train[i] for i in held]
    train, test = [f for f in train if f[0] in ok], [f for f in test if f[0] in ok]
    _check_disk(where.parent, (len(train) + len(test)) * int(np.prod(shape)) * 4)
    warnings.warn(
        f"decoding the {len(train) + len(test)} images of {root} at {size[0]}x{size[1]} "
        f"{mode} into the cache {where} (once; later runs read it)",
        DataNote,
        stacklevel=4,
    )
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=f".{where.name}.", suffix=".tmp"))
    try:
        meta = {"version": CACHE_VERSION, "class_names": class_names, "shape": shape}
        for part, files in (("train", train), ("test", test)):
            n = _decode_all(files, tmp, part, shape, bad, bad_images, root)
            meta[f"{part}_size"] = n
        meta["skipped"] = [[str(p), why] for p, why in bad]
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, where)
        except OSError:  # another process cached the same folder first: use theirs
            if not (where / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _decode_all(files: Files, tmp: Path, part: str, shape, bad: list, bad_images, root) -> int:
    """Decode ``files`` one by one into ``tmp/x_<part>.f32``; returns how many were written."""
    path = tmp / f"x_{part}.f32"
    labels: list[int] = []
    if files:
        x = np.memmap(path, np.float32, "w+", shape=(len(files), *shape))
        for file, label in files:
            try:
                x[len(labels)] = decode_image(file, shape[1:], "gray" if shape[0] == 1 else "rgb")
            except BadImage as err:
                bad.append((file, str(err)))
                if bad_images == "error":
                    _refuse(root, bad)
                continue
            labels.append(label)
        x.flush()
        del x
        os.truncate(path, len(labels) * int(np.prod(shape)) * 4)  # the skipped rows' space
    np.save(tmp / f"y_{part}.npy", np.array(labels, dtype=np.int64))
    return len(labels)


def _refuse(root: Path, bad: list) -> None:
    shown = "; ".join(why for _, why in bad[:SHOW_BAD])
    more = f"; and {len(bad) - SHOW_BAD} more" if len(bad) > SHOW_BAD else ""
    raise BadImage(
        f"{root}: {len(bad)} unreadable image file{'s' if len(bad) > 1 else ''}: {shown}{more}. "
        "Remove or repair them, or leave them out with bad_images='skip' "
        "(deltanet: --bad-images skip)."
    )


def _check_disk(directory: Path, needed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise OSError(
            f"decoding the images needs {needed / 2**30:.2f} GiB in the cache {directory}, but "
            f"{free / 2**30:.2f} GiB are free: give a smaller image size, or set DELTANET_DATA "
            "to a disk with room."
        )


def _cache_ok(where: Path) -> bool:
    """Whether ``where`` holds a complete cache: meta.json, and arrays of the sizes it says."""
    try:
        meta = json.loads((where / "meta.json").read_text())
        row = int(np.prod(meta["shape"])) * 4
        for part in ("train", "test"):
            n = meta[f"{part}_size"]
            if n and (where / f"x_{part}.f32").stat().st_size != n * row:
                return False
            if len(np.load(where / f"y_{part}.npy", allow_pickle=False)) != n:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _open_cache(root: Path, where: Path, bad_images: str) -> Dataset:
    meta = json.loads((where / "meta.json").read_text())
    bad = [(Path(p), why) for p, why in meta["skipped"]]
    if bad and bad_images == "error":
        _refuse(root, bad)
    if bad:
        warnings.warn(
            f"{root}: left out {len(bad)} unreadable image file(s): "
            + "; ".join(why for _, why in bad[:SHOW_BAD]),
            DataNote,
            stacklevel=3,
        )
    shape, arrays = tuple(meta["shape"]), {}
    for part in ("train", "test"):
        n = meta[f"{part}_size"]
        if n == 0:
            raise ValueError(f"{root}: no readable {part} image left.")
        arrays[f"x_{part}"] = np.memmap(where / f"x_{part}.f32", np.float32, "r", shape=(n, *shape))
        arrays[f"y_{part}"] = np.load(where / f"y_{part}.npy", allow_pickle=False)
    names = meta["class_names"]
    count_classes(arrays["y_train"], arrays["y_test"], str(root), declared=len(names))
    return Dataset(
        name=root.name or str(root),
        num_classes=len(names),
        input_shape=shape,
        class_names=list(names),
        **arrays,
    )
