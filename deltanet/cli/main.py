"""The ``deltanet`` command: argument parsing and dispatch; the commands live beside it.

Start-up imports only NumPy and deltanet's own modules, so ``deltanet --help`` answers at once;
scikit-learn, matplotlib, tqdm and mnist1d are imported by the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import struct
import sys
import warnings
import zipfile
from collections.abc import Sequence

from deltanet.cli import recipes
from deltanet.cli.common import TRAIN_DEFAULTS, CliError, parse_shape
from deltanet.data import DATASETS, MAX_CLASSES, DataNote
from deltanet.optim import OPTIMIZERS
from deltanet.schedules import POLICIES as LR_POLICIES
from deltanet.zoo import MAX_INPUT_SIZE, MODELS

EXAMPLES = """\
examples:
  deltanet train                                  # digits CNN on the 8x8 digits, ~99% test
  deltanet train --model mlp --epochs 30 --lr 0.01
  deltanet train --data mnist --model lenet5 --epochs 5 --lr-policy step --gamma 0.5 \\
                 --stepsize 2000
  deltanet train --data my_data.npz --out runs/mine    # arrays x (N, C, H, W) and y (N,)
  deltanet train --resume runs/mine/checkpoints/last.safetensors --epochs 30
  deltanet evaluate runs/mine/model.safetensors
  deltanet predict runs/mine/model.safetensors digit.png
  deltanet summary --model lenet5
  deltanet gradcheck --model digits_cnn
  deltanet plot runs/mine
"""


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        msg = f"expected integers like 1000,2000. Received: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _augment_spec(text: str) -> str:
    """--augment: the spec in its canonical form ("crop4,flip"; "none"), or a usage error."""
    from deltanet.data.augment import parse_augment

    try:
        return parse_augment(text).spec
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1. Received: {text!r}")
    return value


def _class_count(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_CLASSES:
        raise argparse.ArgumentTypeError(f"at most {MAX_CLASSES} classes. Received: {text!r}")
    return value


def _add_train(sub: argparse._SubParsersAction) -> None:
    d = TRAIN_DEFAULTS
    p = sub.add_parser(
        "train",
        help="train a model; writes a run directory",
        description="Train a zoo model on a dataset. The run directory receives\n"
        "model.safetensors, history.csv, metrics.json, checkpoints/ and PNG plots. The test set\n"
        "is evaluated once, at the end; validation comes from a split of the training set.\n"
        "A (model, dataset) pair with a recipe (listed below) trains with the recipe's settings\n"
        "instead of the defaults shown here; flags given override both.",
        epilog=EXAMPLES + "\n" + recipes.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=MODELS, help="zoo model (default: chosen from the data)")
    _add_data_args(
        p,
        f"dataset name ({', '.join(DATASETS)}), .npz path, or a folder of images (one "
        f"subfolder per class) (default: {d['data']})",
    )
    p.add_argument(
        "--epochs", type=int,
        help=f"the run's total, at most 1000000; resuming: more than done (default: {d['epochs']})",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, help=f"default: {d['batch_size']}")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default: {d['optimizer']}")
    p.add_argument("--lr", type=float, help=f"base learning rate (default: {d['lr']})")
    p.add_argument(
        "--lr-policy", choices=LR_POLICIES,
        help=f"Caffe learning-rate policy, per iteration (default: {d['lr_policy']})",
    )  # fmt: skip
    g = p.add_argument_group("learning-rate policy parameters (as Caffe's solver)")
    g.add_argument("--gamma", type=float, help="step, exp, inv, multistep, sigmoid")
    g.add_argument("--stepsize", type=int, help="step, sigmoid (iterations)")
    g.add_argument("--stepvalues", type=_int_list, help="multistep: iterations, e.g. 500,900")
    g.add_argument("--power", type=float, help="inv, poly")
    g.add_argument("--max-iter", type=int, help="poly, cosine (default: all iterations)")
    g.add_argument("--min-lr", type=float, help="cosine, in [0, --lr] (default: 0)")
    g.add_argument(
        "--warmup", type=int, help="linear warm-up iterations, fewer than the run's (default: 0)"
    )
    p.add_argument("--weight-decay", type=float, help="L2 weight decay (default: none)")
    p.add_argument("--momentum", type=float, help="sgd, rmsprop: momentum (default: none)")
    p.add_argument("--dropout", type=float, help="digits_cnn: dropout before the last layer")
    p.add_argument("--seed", type=int, help=f"weights, split and shuffling (default: {d['seed']})")
    p.add_argument(
        "--val-fraction", type=float,
        help=f"share of the training set held out for validation, 0 for none "
        f"(default: {d['val_fraction']})",
    )  # fmt: skip
    p.add_argument(
        "--standardize", action=argparse.BooleanOptionalAction,
        help="standardise inputs per channel with the training split's mean and std, saved "
        "with the model (default: on)",
    )  # fmt: skip
    p.add_argument(
        "--augment", type=_augment_spec, metavar="SPEC",
        help="augment the training batches (never validation or test data), comma-separated, "
        "in order: crop<P> (zero padding P then a random crop; images), flip (horizontal; "
        "images), shift<S> or shift<S>z (circular or zero-filled shift by up to S; 1D "
        f"signals), norm<MEAN>/<STD>, or none (default: {d['augment']})",
    )  # fmt: skip
    p.add_argument(
        "--out", metavar="DIR", help="run directory, new or empty (default: a new one under runs/)"
    )
    p.add_argument(
        "--resume", metavar="CHECKPOINT",
        help="continue a run from its checkpoint, in its own directory or a new --out; the "
        "run keeps its settings, only --epochs may change",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--distributed", action="store_true",
        help="data-parallel over MPI ranks: mpiexec -n N deltanet train --distributed ... "
        "(--batch-size is the global batch; rank 0 writes the run directory)",
    )  # fmt: skip
    p.add_argument(
        "--sync-batch-norm", action="store_true",
        help="with --distributed: batch-norm statistics of the global batch (default: per rank)",
    )  # fmt: skip


def _add_tools(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="loss and accuracy of a model file on a test set")
    p.add_argument("model_file", metavar="MODEL_FILE")
    _add_data_args(
        p, "dataset name, .npz path or image folder (default: the data it was trained on)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=256)

    p = sub.add_parser("predict", help="class and probabilities of an input (.npy or .png)")
    p.add_argument("model_file", metavar="MODEL_FILE")
    p.add_argument(
        "input", metavar="INPUT",
        help=".npy (one example or a batch, up to 512 MiB) or .png image (up to 4096x4096; "
        "8 or 16 bits); for a model trained on an image folder, a .png/.jpg/.jpeg/.bmp/.gif "
        "decoded as the folder was",
    )  # fmt: skip
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="PNG: dark ink on light paper is inverted (default: auto)")  # fmt: skip

    p = sub.add_parser("summary", help="layers, output shapes and parameter counts")
    p.add_argument("model_file", metavar="MODEL_FILE", nargs="?", help="a saved model")
    _add_model_args(p)
    p.add_argument("--depth", type=_positive_int, default=3,
                   help="nested levels to list (1: top level only; default: 3)")  # fmt: skip

    p = sub.add_parser(
        "gradcheck", help="numerical gradient check of a model in float64",
        description="Compare each parameter's backpropagated gradient with central differences "
        "on a small random batch, in float64, and print the relative difference per parameter.",
    )  # fmt: skip
    p.add_argument("model_file", metavar="MODEL_FILE", nargs="?", help="a saved model")
    _add_model_args(p)
    p.add_argument("--batch", type=int, default=2, help="random examples (default: 2)")
    p.add_argument("--mode", choices=("auto", "elementwise", "directional"), default="auto",
                   help="auto: elementwise up to 12,000 parameters, else one random direction "
                   "per parameter")  # fmt: skip
    p.add_argument("--eps", type=float, default=1e-5, help="finite-difference step (1e-5)")
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative difference (1e-6)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("plot", help="re-create the PNG plots of a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR")


def _add_data_args(p: argparse.ArgumentParser, data_help: str) -> None:
    p.add_argument("--data", metavar="NAME|FILE.npz|DIR", help=data_help)
    p.add_argument(
        "--data-dir", metavar="DIR",
        help="where the files of mnist, fashion_mnist, cifar10 and mnist1d are (or go)",
    )  # fmt: skip
    p.add_argument(
        "--download", action="store_true",
        help="mnist, fashion_mnist, cifar10: download missing files once (SHA-256 checked)",
    )  # fmt: skip
    g = p.add_argument_group("images (--data DIR: one subfolder of PNG/JPEG files per class)")
    g.add_argument(
        "--image-size", type=_image_size, metavar="N|HxW",
        help="resize the images bilinearly: DIR, digits, mnist, fashion_mnist, cifar10 "
        "(default: DIR: the first image's size; evaluate: the model's)",
    )  # fmt: skip
    g.add_argument(
        "--image-mode", choices=("gray", "rgb"),
        help="DIR: decode as grayscale or RGB (default: gray when every image is)",
    )  # fmt: skip
    g.add_argument(
        "--bad-images", choices=("error", "skip"),
        help="DIR: unreadable image files (empty, truncated, corrupt, too large) refuse the "
        "folder, naming them (error, the default), or are left out with a note (skip)",
    )  # fmt: skip


def _image_size(text: str) -> str:
    """--image-size: "28" or "28x32" (HEIGHTxWIDTH) in the canonical form "28x32"."""
    from deltanet.data.images import parse_image_size

    try:
        size = parse_image_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    assert size is not None
    return f"{size[0]}x{size[1]}"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODELS, help="zoo model (instead of MODEL_FILE)")
    p.add_argument(
        "--input-shape", type=parse_shape,
        help="one example's shape, without the batch axis, e.g. 1,28,28 (at most "
        f"{MAX_INPUT_SIZE:,} values)",
    )  # fmt: skip
    p.add_argument("--num-classes", type=_class_count, default=10, help="default: 10")


# Commands whose parser and runner live in a module of their own: ``add_parser(sub)`` and
# ``run(args) -> int``. Their modules import only NumPy and deltanet at top level.
OWN_MODULE_COMMANDS = {
    "pack": "deltanet.cli.pack",
    "export": "deltanet.cli.export",
    "serve": "deltanet.cli.serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltanet",
        description="deltanet: train and check NumPy neural networks whose every backward pass "
        "is derived by hand.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from deltanet._version import __version__

    parser.add_argument("--version", action="version", version=f"deltanet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_tools(sub)
    for module_name in OWN_MODULE_COMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from deltanet.cli.train import run_train

        return run_train(args)
    if args.command in OWN_MODULE_COMMANDS:
        return importlib.import_module(OWN_MODULE_COMMANDS[args.command]).run(args)
    from deltanet.cli import commands

    return getattr(commands, f"run_{args.command}")(args)


# What bad input raises, printed as one line: our own errors, and what a damaged file or a
# failed run can raise from the libraries (zip and struct errors, an arithmetic overflow).
INPUT_ERRORS = (
    CliError, ValueError, TypeError, OSError, RuntimeError, ImportError, EOFError,
    ArithmeticError, zipfile.BadZipFile, struct.error,
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deltanet`` command; returns the exit status (2 on bad input).

    No traceback reaches the user: bad input is one ``deltanet: error:`` line (status 2),
    running out of memory one line (status 1), Ctrl-C ``deltanet: interrupted`` (status 130),
    and the data loaders' notes (``DataNote``) print as ``deltanet: note:`` lines.
    """
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _main(argv)
    except KeyboardInterrupt:
        print("deltanet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output left (deltanet summary | head -1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors (already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return _run(args)
    except BrokenPipeError:
        raise
    except INPUT_ERRORS as err:
        # Bad input and failed runs get one clear line, not a traceback.
        print(f"deltanet: error: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        detail = f" ({err})" if str(err) else ""
        print(f"deltanet: error: out of memory{detail}.", file=sys.stderr)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Notes from the data loaders as one line; other warnings as Python shows them."""
    if issubclass(category, DataNote):
        print(f"deltanet: note: {message}", file=sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


_SHOW_WARNING = warnings.showwarning
