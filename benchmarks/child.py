"""One framework, one workload, one fresh process: ``python -m benchmarks.child ...``.

``python -m benchmarks`` starts this module once per framework, workload and round. The
process runs only its own framework (the deltanet child never imports torch; the PyTorch
child runs no NumPy GEMM), so neither framework's idle worker threads spin on the cores while
the other one is timed. It takes ``--threads`` threads (the parent also sets
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``NUMBA_NUM_THREADS``
in its environment; here threadpoolctl limits NumPy's BLAS and ``torch.set_num_threads``
PyTorch's pool), runs ``--warmup`` untimed steps, then untimed steps for ``--settle``
seconds, then ``--steps`` timed steps, and prints one JSON line: the median, minimum and
maximum step time in ms, the peak resident set (``VmHWM``) after setup and at the end, and
what the libraries report about themselves (``machine.numpy_side`` / ``torch_side``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _limit_threads(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads)


def _workload(name: str):
    from benchmarks.__main__ import WORKLOADS

    for w in WORKLOADS:
        if w.name == name:
            return w
    raise SystemExit(f"benchmarks.child: unknown workload {name!r}")


def run(args: argparse.Namespace) -> dict:
    from benchmarks import machine, mainjob
    from benchmarks.memory import _max_rss_mib

    limiter = _limit_threads(args.threads)  # noqa: F841  (kept alive: the limit holds)
    torch = None
    if args.framework == "torch":
        import torch

        torch.set_num_threads(args.threads)
    row: dict = {"framework": args.framework, "workload": args.workload}
    if args.workload == mainjob.NAME:
        batch = args.batch or mainjob.BATCH
        if torch is None:
            rates = mainjob.deltanet_epochs(args.epochs, batch)
        else:
            rates = mainjob.torch_epochs(args.epochs, batch, torch)
        ips = mainjob.after_first(rates)
        later = rates[1:] or rates
        row.update(
            batch=batch,
            epochs=args.epochs,
            epoch_images_per_s=rates,
            images_per_s=ips,
            median_ms=1000.0 * batch / ips,  # per batch of `batch` images
            min_ms=1000.0 * batch / max(later),
            max_ms=1000.0 * batch / min(later),
            base_mib=None,
        )
    else:
        w = _workload(args.workload)
        batch = args.batch or w.batch
        ours, theirs = w.build(torch, batch)
        step = theirs if torch is not None else ours
        assert step is not None
        row["base_mib"] = _max_rss_mib()
        for _ in range(args.warmup):
            step()
        end = time.perf_counter() + args.settle
        while time.perf_counter() < end:
            step()
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000.0)
        median = statistics.median(times)
        row.update(
            batch=batch,
            steps=args.steps,
            median_ms=median,
            min_ms=min(times),
            max_ms=max(times),
            images_per_s=1000.0 * batch / median,
        )
    row["peak_mib"] = _max_rss_mib()
    row["threads"] = args.threads
    row["env"] = machine.torch_side(torch) if torch is not None else machine.numpy_side()
    return row


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.child", description=__doc__)
    p.add_argument("--framework", choices=("deltanet", "torch"), required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--settle", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--epochs", type=int, default=15)
    return p.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(run(parse(sys.argv[1:]))), flush=True)
    sys.exit(0)
