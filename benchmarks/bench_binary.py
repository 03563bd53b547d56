"""Binary layers: bit-packed XNOR-popcount against deltanet float32 and PyTorch float32.

    python -m benchmarks.bench_binary [--repeat 15] [--threads N] [--json out.json]
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
- torch float32: ``F.linear`` / ``F.conv2d`` on the same ±1 inputs and weights, in a process
  of its own (so that neither framework's idle worker threads slow the other's calls) with as many
  threads as the numba kernels (``--threads``, default numba's count), the same rounds.

It prints the CPU and the instruction sets that matter here (AVX2, AVX-512, VPOPCNTDQ), the
target numba compiles for, and whether the conv kernel's code holds ``vpopcntq``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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


def _signs(layer, x) -> tuple[np.ndarray, np.ndarray]:
    """The ±1 input and weight that every float path multiplies."""
    xs = np.where(x >= 0, 1, -1).astype(np.float32)
    return xs, np.ascontiguousarray(layer.quantized_weight(), np.float32)


def _timed(fns: dict, repeat: int, settle: float = 0.2) -> dict[str, float]:
    """Median ms of each function: interleaved in blocks of 5 calls, each after ``settle`` s of
    sleep and one untimed call, as ``benchmarks.harness``, so that drifting load hits every path
    alike, while the worker threads the previous path left spinning (OpenBLAS's spin for about
    0.1 s after a GEMM, and took a core from the packed kernel's next calls) have gone idle."""
    for fn in fns.values():
        fn()  # warm up: numba compilation or cache load, BLAS threads
    times: dict[str, list[float]] = {k: [] for k in fns}
    first = next(iter(fns))
    while len(times[first]) < repeat:
        n = min(5, repeat - len(times[first]))
        for key, fn in fns.items():
            time.sleep(settle)
            fn()
            for _ in range(n):
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _torch_child(path: str, threads: int, repeat: int, settle: float) -> int:
    """The ``--torch-child`` process: time ``F.linear`` / ``F.conv2d`` on the saved ±1 arrays."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    data = np.load(path)
    fns = {}
    for i in range(len(data.files) // 2):
        xt, wt = torch.from_numpy(data[f"x{i}"]), torch.from_numpy(data[f"w{i}"])
        if wt.ndim == 2:
            fns[str(i)] = lambda xt=xt, wt=wt: F.linear(xt, wt)
        else:
            fns[str(i)] = lambda xt=xt, wt=wt: F.conv2d(xt, wt, padding=1)
    with torch.inference_mode():
        med = _timed(fns, repeat, settle)
    print(json.dumps({"threads": torch.get_num_threads(), "median_ms": med}))
    return 0


def _torch_times(arrays: list, threads: int, repeat: int, settle: float) -> list | None:
    """Median ms per case from a PyTorch process of its own, or None without PyTorch."""
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return None
    except ValueError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "signs.npz")
        np.savez(
            path, **{f"{k}{i}": a for i, pair in enumerate(arrays) for k, a in zip("xw", pair)}
        )
        cmd = [sys.executable, str(Path(__file__).resolve()), "--torch-child", path]
        cmd += ["--threads", str(threads), "--repeat", str(repeat), "--settle", str(settle)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        print(f"torch process failed:\n{done.stderr.strip()}", file=sys.stderr)
        return None
    med = json.loads(done.stdout.strip().splitlines()[-1])["median_ms"]
    return [med[str(i)] for i in range(len(arrays))]


def machine() -> dict[str, object]:
    """The CPU, its instruction sets that matter here, numba's target and thread count."""
    info: dict[str, object] = {"cpu": platform.processor() or platform.machine(), "isa": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["cpu"] = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            wanted = ("popcnt", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq")
            info["isa"] = [f for f in wanted if f in flags]
            break
    info["cores"] = os.cpu_count()
    from deltanet import fast

    if fast.enabled():
        import llvmlite.binding as llvm
        import numba

        info["numba_target"] = llvm.get_host_cpu_name()
        info["numba_threads"] = numba.get_num_threads()
    return info


def _kernel_has_vpopcntq() -> bool | None:
    """Whether the conv kernel compiles to ``vpopcntq`` on this CPU (None without numba): a
    fresh serial compile of its source, as numba does not show the code it loaded from cache."""
    from deltanet import fast

    if not fast.enabled():
        return None
    import numba

    from deltanet.binary import popcount_numba

    kernel = popcount_numba.conv_counts
    if not kernel.signatures:
        return None
    fresh = numba.njit(kernel.py_func)
    sig = kernel.signatures[0]
    fresh.compile(sig)
    return "vpopcntq" in fresh.inspect_asm(sig)


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


def measure(repeat: int, threads: int, settle: float = 0.2) -> list[dict]:
    rng = np.random.default_rng(0)
    rows, arrays = [], []
    for name, layer, x in _cases(rng):
        packed = pack(layer)
        fns = {
            "packed": lambda p=packed, x=x: p(x),
            "packed-numpy": _numpy_packed(packed, x),
            "deltanet float32": lambda q=layer, x=x: q(x),
            "f32 GEMM only": _gemm_only(layer, x),
        }
        y_ref, y_packed = layer(x), packed(x)
        err = float(np.max(np.abs(y_ref - y_packed)) / max(np.max(np.abs(y_ref)), 1e-30))
        med = _timed(fns, repeat, settle)
        rows.append({"case": name, "median_ms": med, "max_rel_error": err})
        arrays.append(_signs(layer, x))
    torch_ms = _torch_times(arrays, threads, repeat, settle)
    for row, t in zip(rows, torch_ms or [None] * len(rows)):
        if t is not None:
            row["median_ms"]["torch float32"] = t
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
    parser.add_argument(
        "--threads", type=int, help="numba and PyTorch threads (default: numba's thread count)"
    )
    parser.add_argument(
        "--settle", type=float, default=0.2, help="seconds of sleep before each block (0.2)"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--torch-child", help=argparse.SUPPRESS)  # the PyTorch process
    args = parser.parse_args(argv)
    if args.repeat < 1 or (args.threads is not None and args.threads < 1) or args.settle < 0:
        parser.error("--repeat and --threads must be at least 1, --settle at least 0")
    if args.torch_child:
        return _torch_child(args.torch_child, args.threads or 1, args.repeat, args.settle)
    from deltanet import fast

    threads = args.threads or os.cpu_count() or 1
    if fast.enabled():
        import numba

        threads = args.threads or numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        threads = numba.get_num_threads()
    rows = measure(args.repeat, threads, args.settle)
    info = machine()
    info["conv_kernel_vpopcntq"] = _kernel_has_vpopcntq()
    print(
        f"CPU: {info['cpu']}, {info['cores']} cores; ISA: {' '.join(info['isa']) or '?'}; "  # type: ignore[arg-type]
        f"numba target: {info.get('numba_target', '-')}; "
        f"conv kernel vpopcntq: {info['conv_kernel_vpopcntq']}"
    )
    print(
        f"numba kernels: {'on' if fast.enabled() else 'off'}; {threads} threads (numba and "
        f"PyTorch, PyTorch in a process of its own); medians of {args.repeat}"
    )
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
