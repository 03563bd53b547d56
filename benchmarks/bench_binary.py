"""Binary layers: bit-packed XNOR-popcount against deltanet float32 and PyTorch float32.

    python -m benchmarks.bench_binary [--repeat 15] [--json out.json]
    python benchmarks/bench_binary.py

Two shapes, as the issue asks: a 1-bit dense layer 4096 -> 4096 at batch 64 and a 1-bit 3x3
convolution 256 -> 256 channels on 14x14 (padding 1) at batch 16. For each, in one process and
interleaved round by round, the median time of one inference forward pass of:

- packed: ``deltanet.binary.pack`` of the layer (numba kernel when available, else NumPy);
- packed-numpy: the same with ``DELTANET_NUMBA=0`` (the NumPy reference);
- deltanet float32: the ``QDense`` / ``QConv2D`` itself in eval mode (it binarizes the input and
  its latent weights on every call, then runs the float GEMM / convolution);
- f32 GEMM only: the float product alone, on ±1 arrays binarized beforehand (``dense_forward`` /
  ``conv_forward``): the lower bound of any float path;
- torch float32: ``F.linear`` / ``F.conv2d`` on the same ±1 inputs and weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``deltanet`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deltanet.binary import pack  # noqa: E402
from deltanet.binary.layers import QConv2D, QDense  # noqa: E402
from deltanet.fast.conv import conv_forward  # noqa: E402
from deltanet.ops.dense import dense_forward  # noqa: E402


def _cases(rng: np.random.Generator) -> list[tuple[str, object, np.ndarray]]:
    dense = QDense(4096, 4096, bias=False, scaling="channel", rng=rng)
    x_dense = rng.standard_normal((64, 4096)).astype(np.float32)
    conv = QConv2D(256, 256, 3, padding=1, bias=False, scaling="channel", rng=rng)
    x_conv = rng.standard_normal((16, 256, 14, 14)).astype(np.float32)
    return [
        ("dense 4096->4096, batch 64", dense.eval(), x_dense),
        ("conv3x3 256->256 14x14, batch 16", conv.eval(), x_conv),
    ]


def _torch_fn(layer, x):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    xt = torch.from_numpy(np.where(x >= 0, 1, -1).astype(np.float32))
    wt = torch.from_numpy(np.ascontiguousarray(layer.quantized_weight()))
    if isinstance(layer, QDense):
        return lambda: F.linear(xt, wt)
    return lambda: F.conv2d(xt, wt, padding=1)


def _gemm_only(layer, x):
    xs, wq = np.where(x >= 0, 1, -1).astype(np.float32), layer.quantized_weight()
    if isinstance(layer, QDense):
        return lambda: dense_forward(xs, wq, None)
    return lambda: conv_forward(xs, wq, None, 1, 1)


def _numpy_packed(packed, x):
    def run():
        old = os.environ.get("DELTANET_NUMBA")
        os.environ["DELTANET_NUMBA"] = "0"
        try:
            return packed(x)
        finally:
            if old is None:
                del os.environ["DELTANET_NUMBA"]
            else:
                os.environ["DELTANET_NUMBA"] = old

    return run


def measure(repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, layer, x in _cases(rng):
        packed = pack(layer)
        fns = {
            "packed": lambda p=packed, x=x: p(x),
            "packed-numpy": _numpy_packed(packed, x),
            "deltanet float32": lambda q=layer, x=x: q(x),
            "f32 GEMM only": _gemm_only(layer, x),
        }
        torch_fn = _torch_fn(layer, x)
        if torch_fn is not None:
            fns["torch float32"] = torch_fn
        y_ref, y_packed = layer(x), packed(x)
        err = float(np.max(np.abs(y_ref - y_packed)) / max(np.max(np.abs(y_ref)), 1e-30))
        for fn in fns.values():
            fn()  # warm up: numba compilation or cache load, BLAS threads
        times: dict[str, list[float]] = {k: [] for k in fns}
        # Interleaved in blocks of 5 calls, each after one untimed call, as benchmarks.harness:
        # so that drifting load hits every path alike, while the worker threads the previous
        # path left spinning (numba's, OpenBLAS's, PyTorch's) do not land on the first call.
        while len(times["packed"]) < repeat:
            n = min(5, repeat - len(times["packed"]))
            for key, fn in fns.items():
                fn()
                for _ in range(n):
                    t = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        rows.append({"case": name, "median_ms": med, "max_rel_error": err})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| case | packed ms | packed-numpy ms | deltanet f32 ms | f32 GEMM only ms | torch f32 ms "
        "| f32 / packed | GEMM / packed | torch / packed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["median_ms"]
        t = m.get("torch float32", float("nan"))
        lines.append(
            f"| {r['case']} | {m['packed']:.2f} | {m['packed-numpy']:.2f} | "
            f"{m['deltanet float32']:.2f} | {m['f32 GEMM only']:.2f} | {t:.2f} | "
            f"{m['deltanet float32'] / m['packed']:.1f}x | {m['f32 GEMM only'] / m['packed']:.1f}x "
            f"| {t / m['packed']:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from deltanet import fast

    rows = measure(args.repeat)
    print(f"numba kernels: {'on' if fast.enabled() else 'off'}; medians of {args.repeat}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
