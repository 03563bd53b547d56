"""``python -m benchmarks``: every workload in deltanet and PyTorch, a table and a JSON file."""

from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np

from benchmarks import convnets, harness, lenet, memory, mlp

WORKLOADS = [*lenet.WORKLOADS, *convnets.WORKLOADS, *mlp.WORKLOADS]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--steps", type=int, default=30, help="timed steps per framework (>= 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--only", default="", help="comma-separated substrings of workload names")
    p.add_argument("--batch", type=int, default=None, help="override every batch size (smoke)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    p.add_argument("--no-torch", action="store_true", help="time deltanet alone")
    p.add_argument("--memory-steps", type=int, default=20, help="0: skip the memory run")
    p.add_argument(
        "--settle", type=float, default=0.2, help="untimed seconds before each block of steps"
    )
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.settle < 0:
        p.error(
            f"--steps must be >= 1, --warmup and --settle >= 0. "
            f"Received: {args.steps}, {args.warmup}, {args.settle}."
        )
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    threads = harness.blas_threads()
    torch = None if args.no_torch else harness.setup_torch(threads)
    wanted = [w for w in args.only.split(",") if w]
    chosen = [w for w in WORKLOADS if not wanted or any(s in w.name for s in wanted)]
    results = []
    for w in chosen:
        ours, theirs = w.build(torch, args.batch)
        r = harness.compare(
            w.name, args.batch or w.batch, ours, theirs, args.steps, args.warmup, w.target,
            settle=args.settle,
        )  # fmt: skip
        results.append(r)
        print(harness.format_table([r]).splitlines()[-1], flush=True)
    mem = []
    if args.memory_steps > 0 and (not wanted or any("memory" in s for s in wanted)):
        batch = args.batch or 256
        frameworks = ["deltanet"] + ([] if torch is None else ["torch"])
        mem = [memory.measure(f, batch, args.memory_steps, threads) for f in frameworks]
    table = harness.format_table(results, mem)
    print(
        f"\nthreads: {threads} (NumPy BLAS and torch.set_num_threads); median of {args.steps} "
        f"steps, interleaved in blocks of 5 after {args.warmup} warm-up steps, each block after "
        f"{args.settle:g} s of untimed steps; ratio: of the "
        f"medians; paired ratio: median over block pairs of the ratio of the block medians\n"
    )
    print(table)
    report = {
        "threads": threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "settle_s": args.settle,
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "results": [r.as_dict() for r in results],
        "memory": mem,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
