"""Run the tutorial notebooks top to bottom, each in a fresh kernel, and store their outputs.

    python docs/run_notebooks.py [--check] [--timeout SECONDS] [docs/tutorials/NAME.ipynb ...]

Each notebook runs with nbclient in a new ``python3`` kernel whose working directory is the
notebook's folder; a cell that raises, or runs longer than ``--timeout``, stops it, and the
script names the notebook and the cell and exits with status 1. Without ``--check`` the fresh
outputs are written back into the ``.ipynb`` (the site renders the stored outputs; CI runs them
again during ``mkdocs build`` with ``DELTANET_DOCS_EXECUTE=true``). Prints each notebook's time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

TUTORIALS = Path(__file__).resolve().parent / "tutorials"


def run(path: Path, timeout: int) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` in a fresh kernel; returns it with its outputs."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    )
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="run only; leave the files alone")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(TUTORIALS.glob("*.ipynb"))
    failed = 0
    for path in paths:
        start = time.perf_counter()
        try:
            nb = run(path, args.timeout)
        except (CellExecutionError, CellTimeoutError) as err:
            failed += 1
            print(f"{path}: FAILED after {time.perf_counter() - start:.1f} s\n{err}", flush=True)
            continue
        seconds = time.perf_counter() - start
        if not args.check:
            nbformat.write(nb, path)
        print(f"{path}: {seconds:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
