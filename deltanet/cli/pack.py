"""``deltanet pack MODEL OUT``: bit-pack the 1-bit layers of a trained model file.

The packed file keeps the run's metadata (data, input shape, standardizer, class names), so
``deltanet evaluate OUT`` and ``deltanet predict OUT INPUT`` work on it as on the original.
An existing OUT is replaced (atomically) only with ``--force``, and never when it is MODEL.
It prints what became of every layer, then the bytes of tensors per kind of layer before and
after (the 1-bit layers' float weights -> bits and affine; folded batch norms; the float layers
kept: first and last layers, shortcuts) and the two file sizes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from deltanet.cli.common import CliError, load_model_file, same_path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pack",
        help="bit-pack a trained binary model for fast inference",
        description="Replace every 1-bit layer (QDense / QConv with act_bit=1 and weight_bit=1) "
        "of MODEL by its bit-packed XNOR-popcount version, fold the batch norms that follow "
        "them, and write the inference-only model to OUT.",
    )
    p.add_argument("model_file", metavar="MODEL", help="a .safetensors model file or checkpoint")
    p.add_argument("out", metavar="OUT", help="where to write the packed .safetensors file")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists (not MODEL)")


def run(args: argparse.Namespace) -> int:
    from deltanet import io
    from deltanet.binary.pack import pack_with_sizes

    if os.path.exists(args.model_file) and same_path(args.out, args.model_file):
        raise CliError(
            f"pack: OUT {args.out!r} is MODEL: writing it would destroy the trained model "
            "(refused even with --force); choose another path."
        )
    if os.path.isdir(args.out):
        raise CliError(f"pack: OUT {args.out!r} is a directory: give a file path.")
    if os.path.exists(args.out) and not args.force:
        raise CliError(f"pack: OUT {args.out!r} exists: choose another path or give --force.")
    model, meta = load_model_file(args.model_file)
    try:
        packed, report, sizes = pack_with_sizes(model)
    except ValueError as err:
        raise CliError(f"{args.model_file}: {err}") from None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    io.save(packed, args.out, metadata={"run": {**meta, "packed_from": str(args.model_file)}})
    for line in report:
        print(f"  {line}")
    before, after = os.path.getsize(args.model_file), os.path.getsize(args.out)
    for line in size_table(sizes, (before, after)):
        print(line)
    print(f"wrote {args.out}: {after:,} bytes (from {before:,}, {before / after:.1f}x smaller)")
    return 0


def size_table(sizes: dict[str, tuple[int, int, int]], files: tuple[int, int]) -> list[str]:
    """The lines of the size report: per kind ``(layers, bytes before, bytes after)``, the
    tensors' total, and the ``files`` (bytes before, after; they add names and metadata)."""
    rows = [(kind, f"{n}", f"{b:,}", f"{a:,}") for kind, (n, b, a) in sizes.items() if n]
    rows.append(("all tensors", "", f"{sum(v[1] for v in sizes.values()):,}",
                 f"{sum(v[2] for v in sizes.values()):,}"))  # fmt: skip
    rows.append(("file", "", f"{files[0]:,}", f"{files[1]:,}"))
    head = ("bytes of", "layers", "before", "after")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    return [
        f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}" for r in [head, *rows]
    ]
