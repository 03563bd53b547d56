"""``deltanet export MODEL --onnx OUT [--torch OUT]``: a model file (or a zoo model) as ONNX
and/or as a PyTorch state dict (safetensors). onnx is imported only when --onnx is given.

An existing output is replaced only with ``--force``, and never when it is an input; each file
is written atomically (the old file or the new one, never a mix)."""

from __future__ import annotations

import argparse
import os

from deltanet.cli.common import CliError, load_model_file, parse_shape, same_path

EPILOG = """\
examples:
  deltanet export runs/mine/model.safetensors --onnx mine.onnx
  deltanet export lenet5 --onnx lenet5.onnx --torch lenet5_torch.safetensors
  deltanet export runs/mine/model.safetensors --torch w.safetensors --torch-template t.safetensors
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as ONNX or as a PyTorch state dict",
        description="Export a model file (or a zoo model, freshly initialised) to ONNX (opset "
        "17, dynamic batch, float32) and/or to a PyTorch state dict in safetensors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file (.safetensors) or zoo model name")
    p.add_argument("--onnx", metavar="OUT", help="write the ONNX graph here")
    p.add_argument("--torch", metavar="OUT", help="write a PyTorch state dict (safetensors) here")
    p.add_argument(
        "--torch-template",
        metavar="FILE",
        help="the target PyTorch model's state dict (safetensors): its names and dtypes are used",
    )
    p.add_argument(
        "--input-shape",
        type=parse_shape,
        help="per example, e.g. 1,28,28 (default: the model's own)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of a zoo model's weights")
    p.add_argument(
        "--force", action="store_true", help="overwrite existing outputs (never an input)"
    )


def run(args: argparse.Namespace) -> int:
    if not args.onnx and not args.torch:
        raise CliError("export: nothing to write: give --onnx OUT and/or --torch OUT.")
    if args.torch_template and not args.torch:
        raise CliError("export: --torch-template needs --torch OUT.")
    _check_outputs(args)
    model, shape = _model_and_shape(args)
    torch_tensors = None
    if args.torch:  # every refusal of the state dict before any file is written
        from deltanet.io.torch_weights import torch_state

        torch_tensors = torch_state(model, template=args.torch_template)
    if args.onnx:
        if shape is None:
            raise CliError(
                f"export: the input shape of {args.model!r} is unknown: give --input-shape."
            )
        try:
            from deltanet.io.onnx import export_onnx
        except ImportError as err:  # pragma: no cover - onnx is an optional extra
            raise CliError(f"export: --onnx needs the onnx package ({err}).") from None
        export_onnx(model, args.onnx, shape)
        print(f"wrote {args.onnx} (ONNX opset 17, input (batch, {', '.join(map(str, shape))}))")
    if args.torch and torch_tensors is not None:
        from deltanet.io.safetensors import write_safetensors

        tensors, mapping = torch_tensors
        write_safetensors(args.torch, tensors)
        print(f"wrote {args.torch} ({len(mapping)} tensors, a PyTorch state dict)")
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """--onnx and --torch: new files, or existing ones with --force; never an input of the
    command (MODEL, --torch-template), even with --force, and never the same file twice."""
    inputs = [("MODEL", args.model), ("--torch-template", args.torch_template)]
    inputs = [(what, path) for what, path in inputs if path and os.path.exists(path)]
    if args.onnx and args.torch and same_path(args.onnx, args.torch):
        raise CliError(f"export: --onnx and --torch are the same file {args.torch!r}.")
    for flag, out in (("--onnx", args.onnx), ("--torch", args.torch)):
        if not out:
            continue
        for what, path in inputs:
            if same_path(out, path):
                raise CliError(
                    f"export: {flag} {out!r} is the {what} being read: writing it would destroy "
                    "it (refused even with --force); choose another path."
                )
        if os.path.isdir(out):
            raise CliError(f"export: {flag} {out!r} is a directory: give a file path.")
        if os.path.exists(out) and not args.force:
            raise CliError(f"export: {flag} {out!r} exists: choose another path or give --force.")


def _model_and_shape(args: argparse.Namespace):
    """The model and its per-example input shape (None when neither given nor saved)."""
    from deltanet.zoo import MODELS, build_model, default_input_shape

    if os.path.exists(args.model) or args.model not in MODELS:
        model, run = load_model_file(args.model)
        saved = run.get("input_shape")
        shape = args.input_shape or (tuple(saved) if isinstance(saved, list) else None)
        return model, shape
    shape = args.input_shape or default_input_shape(args.model)
    return build_model(args.model, input_shape=shape, seed=args.seed), shape
