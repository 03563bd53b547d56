"""``python -m benchmarks``: every workload in deltanet and PyTorch, each in a fresh process.

For each round and each workload the parent starts ``python -m benchmarks.child`` once per
framework (never both frameworks in one process), alternating which goes first (deltanet
then PyTorch in even rounds, PyTorch then deltanet in odd ones), every child with the same
thread count. The table gives, per workload, each framework's median over the rounds of the
child's median step time, the spread (min-max) of those per-round medians, the ratio of the
two medians and each child's peak resident set; above it, the machine: CPU model, ISA,
cores, NumPy's BLAS (threadpoolctl) and PyTorch's backend, as the children reported them.
``--shared-process`` runs the old in-process mode instead (both frameworks interleaved in
blocks in this process, ``harness.compare``), which flatters neither side reliably.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks import convnets, harness, lenet, machine, mainjob, mlp

WORKLOADS = [*lenet.WORKLOADS, *convnets.WORKLOADS, *mlp.WORKLOADS]
NAMES = [*(w.name for w in WORKLOADS), mainjob.NAME]
TARGETS = {**{w.name: w.target for w in WORKLOADS}, mainjob.NAME: 1.0}  # issue 16's targets
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="fresh processes per framework (>= 1)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per process (>= 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--settle", type=float, default=0.2, help="untimed seconds before timing")
    p.add_argument("--epochs", type=int, default=15,
                   help="epochs of the main job (>= 2; the first is not counted)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both frameworks (default: this process's cores)")  # fmt: skip
    p.add_argument("--only", default="", help="comma-separated substrings of workload names")
    p.add_argument("--batch", type=int, default=None, help="override every batch size (smoke)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    p.add_argument("--no-torch", action="store_true", help="time deltanet alone")
    p.add_argument("--shared-process", action="store_true",
                   help="old mode: both frameworks in this process, interleaved")  # fmt: skip
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.settle < 0 or args.rounds < 1:
        p.error(
            f"--steps and --rounds must be >= 1, --warmup and --settle >= 0. Received: "
            f"{args.steps}, {args.rounds}, {args.warmup}, {args.settle}."
        )
    if args.epochs < 2:
        p.error(f"--epochs must be >= 2 (the first epoch is not counted). Received: {args.epochs}.")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1. Received: {args.threads}.")
    if args.batch is not None and args.batch < 1:
        p.error(f"--batch must be >= 1. Received: {args.batch}.")
    return args


def chosen(only: str) -> list[str]:
    wanted = [w for w in only.split(",") if w]
    return [n for n in NAMES if not wanted or any(s in n for s in wanted)]


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: str(threads) for k in THREAD_VARS})
    return env


def run_child(framework: str, name: str, args: argparse.Namespace, threads: int) -> dict:
    """One fresh process: ``framework`` on workload ``name``; its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.child", "--framework", framework,
           "--workload", name, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--settle", str(args.settle), "--threads", str(threads),
           "--epochs", str(args.epochs)]  # fmt: skip
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(threads))
    if out.returncode != 0:
        raise RuntimeError(
            f"benchmarks: the {framework} child for {name} failed (status {out.returncode}):\n"
            f"{out.stderr[-3000:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def separate(args: argparse.Namespace, threads: int) -> dict:
    names = chosen(args.only)
    frameworks = ["deltanet"] + ([] if args.no_torch else ["torch"])
    runs: list[dict] = []
    for r in range(args.rounds):
        order = frameworks if r % 2 == 0 else frameworks[::-1]
        for name in names:
            for fw in order:
                row = run_child(fw, name, args, threads)
                row["round"] = r
                runs.append(row)
                print(
                    f"round {r + 1}/{args.rounds} {name:<28} {fw:<8} "
                    f"{row['median_ms']:9.2f} ms  {row['images_per_s']:9.0f} img/s  "
                    f"peak {row['peak_mib']:6.1f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    env = {fw: next((x["env"] for x in runs if x["framework"] == fw), None) for fw in frameworks}
    info = {**machine.cpu(), "threads": threads, "numpy_side": env["deltanet"],
            "torch_side": env.get("torch")}  # fmt: skip
    rows = [harness.summarize(n, [x for x in runs if x["workload"] == n], TARGETS.get(n))
            for n in names]  # fmt: skip
    for x in runs:
        x.pop("env", None)
    report = {
        "mode": "separate processes",
        "rounds": args.rounds,
        "steps": args.steps,
        "warmup": args.warmup,
        "settle_s": args.settle,
        "epochs": args.epochs,
        "threads": threads,
        "machine": info,
        "results": rows,
        "runs": runs,
    }
    print(harness.machine_block(info, args))
    print()
    print(harness.format_rounds_table(rows))
    return report


def shared(args: argparse.Namespace, threads: int) -> dict:
    """The old mode: both frameworks in this process, interleaved (``harness.compare``)."""
    torch = None if args.no_torch else harness.setup_torch(threads)
    wanted = [w for w in args.only.split(",") if w]
    results = []
    for w in WORKLOADS:
        if wanted and not any(s in w.name for s in wanted):
            continue
        ours, theirs = w.build(torch, args.batch)
        results.append(harness.compare(
            w.name, args.batch or w.batch, ours, theirs, args.steps, args.warmup, w.target,
            settle=args.settle,
        ))  # fmt: skip
    print(harness.format_table(results))
    return {
        "mode": "shared process",
        "steps": args.steps,
        "warmup": args.warmup,
        "settle_s": args.settle,
        "threads": threads,
        "machine": machine.cpu(),
        "results": [r.as_dict() for r in results],
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    threads = args.threads or machine.cores()
    report = shared(args, threads) if args.shared_process else separate(args, threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
