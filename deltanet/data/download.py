"""Downloads into the cache: a mirror list, a size bound, SHA-256 checks, atomic renames.

A file appears in the cache only once its SHA-256 matches the published value: it is streamed
to a temporary file in the same directory (same file system, so the final ``os.replace`` is
atomic), fsynced, checked, then renamed. A failed, partial or mismatching download leaves
nothing behind and never replaces a file already there.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

CHUNK = 1 << 16


def download_files(
    directory: str | os.PathLike,
    names: Sequence[str],
    *,
    mirrors: Sequence[str],
    checksums: Mapping[str, str],
    max_bytes: int,
    opener: Callable | None = None,
    timeout: float = 30.0,
    verbose: bool = True,
) -> list[Path]:
    """Download each of ``names`` missing in ``directory`` from the first mirror that serves it.

    Takes: ``mirrors`` (base URLs, tried in turn), ``checksums`` (file name -> SHA-256 hex),
    ``max_bytes`` (a response past it is refused), ``opener(url, timeout=...)`` (default
    ``urllib.request.urlopen``). Returns the paths of ``names`` in ``directory``.
    Raises OSError naming the file, the directory and every URL tried with its error.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    opener = opener or urllib.request.urlopen
    paths = []
    for name in names:
        dest = directory / name
        if not dest.is_file():
            _download_one(name, dest, mirrors, checksums[name], opener, timeout, verbose, max_bytes)
        paths.append(dest)
    return paths


def _download_one(name, dest, mirrors, sha256, opener, timeout, verbose, max_bytes) -> None:
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        if verbose:
            print(f"Downloading {url} -> {dest}", file=sys.stderr)
        try:
            fetch(url, dest, sha256, opener=opener, timeout=timeout, max_bytes=max_bytes)
            return
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"{url}: {e}")
    raise OSError(f"Could not download {name} into {dest.parent}. Tried: " + "; ".join(errors))


def fetch(
    url: str, dest: Path, sha256: str, *, opener: Callable, timeout: float, max_bytes: int
) -> None:
    """Stream ``url`` to ``dest`` through a temporary file; ValueError on a bad size or hash."""
    with replacing(dest) as out, opener(url, timeout=timeout) as response:
        digest, size = hashlib.sha256(), 0
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"response larger than {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}")


@contextlib.contextmanager
def replacing(dest: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``dest`` to write to: fsynced and renamed onto ``dest`` when the
    block ends, removed (``dest`` untouched) when it raises.

    Not ``deltanet.io.atomic_write``: that one rewrites an ``OSError`` to name ``dest``, which
    would change the messages of a failed download (``url: <urlopen error ...>``) or archive."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
