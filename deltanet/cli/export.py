"""``deltanet export MODEL --onnx OUT [--torch OUT]``: a model file (or a zoo model) as ONNX
and/or as a PyTorch state dict (safetensors). onnx is imported only when --onnx is given."""

from __future__ import annotations

import argparse
import os

from deltanet.cli.common import CliError, load_model_file, parse_shape

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


def run(args: argparse.Namespace) -> int:
    if not args.onnx and not args.torch:
        raise CliError("export: nothing to write: give --onnx OUT and/or --torch OUT.")
    if args.torch_template and not args.torch:
        raise CliError("export: --torch-template needs --torch OUT.")
    model, shape = _model_and_shape(args)
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
    if args.torch:
        from deltanet.io.torch_weights import save_torch_weights

        mapping = save_torch_weights(model, args.torch, template=args.torch_template)
        print(f"wrote {args.torch} ({len(mapping)} tensors, a PyTorch state dict)")
    return 0


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
