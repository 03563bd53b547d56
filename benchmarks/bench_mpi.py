"""LeNet-5 data-parallel step time with 1 and 2 MPI ranks, and the share spent in the allreduce.

    python benchmarks/bench_mpi.py [--batch 64] [--steps 40] [--rounds 3]

launches itself under ``mpiexec -n 1`` and ``mpiexec -n 2``, alternately (``--rounds`` times,
so both see the same machine load), with ``OPENBLAS_NUM_THREADS=1`` so each rank has one core.
Under mpiexec it times ``--steps`` training steps of the global batch after a warm-up: the
forward and backward of this rank's shard, ``allreduce_gradients`` (the wait for the slowest
rank included) and the SGD update; plus the allreduce alone after a barrier (its pure cost).
Prints medians in milliseconds from rank 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def worker(batch: int, steps: int) -> dict:
    from mpi4py import MPI

    from deltanet import distributed as dist
    from deltanet.evaluation import resolve_loss
    from deltanet.optim import SGD
    from deltanet.zoo import build_model

    model = build_model("lenet5", seed=0)
    dist.broadcast_parameters(model)
    optimizer = SGD(model, lr=0.01, momentum=0.9)
    loss_fn = resolve_loss("cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    part = dist.shard(batch)
    xl, yl = x[part], y[part]
    times: dict[str, list[float]] = {"compute": [], "allreduce": [], "update": [], "step": []}
    pure = []
    comm = MPI.COMM_WORLD
    for i in range(steps + 5):
        comm.Barrier()
        t0 = time.perf_counter()
        model.zero_grad()
        logits = model(xl)
        _, dlogits = loss_fn(logits, yl)
        model.backward(dlogits * (len(yl) / batch))
        t1 = time.perf_counter()
        dist.allreduce_gradients(model, average=False)
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        comm.Barrier()
        t4 = time.perf_counter()
        dist.allreduce_gradients(model, average=False)  # after a barrier: no waiting
        t5 = time.perf_counter()
        if i >= 5:  # warm-up: caches, first-touch allocations
            for key, value in (("compute", t1 - t0), ("allreduce", t2 - t1),
                               ("update", t3 - t2), ("step", t3 - t0)):  # fmt: skip
                times[key].append(value)
            pure.append(t5 - t4)
    out = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    out["allreduce_alone"] = 1e3 * statistics.median(pure)
    out["parameters"] = model.num_parameters()
    return out


def launch(ranks: int, batch: int, steps: int) -> dict:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), sys.executable,
           __file__, "--worker", "--batch", str(batch), "--steps", str(steps)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.batch, args.steps)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(result), flush=True)
        return
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for ranks in (1, 2):
            runs[ranks].append(launch(ranks, args.batch, args.steps))
    params = runs[1][0]["parameters"]
    print(f"LeNet-5 ({params:,} parameters, {4 * params / 1e3:.0f} kB of float32 gradients), "
          f"global batch {args.batch}, medians of {args.rounds} runs x {args.steps} steps "
          "(ms)")  # fmt: skip
    print("ranks  step  compute  allreduce  update  allreduce-alone  allreduce share")
    for ranks, results in runs.items():
        m = {k: statistics.median(r[k] for r in results) for k in results[0]}
        share = m["allreduce"] / m["step"]
        print(f"{ranks:5d} {m['step']:5.2f} {m['compute']:8.2f} {m['allreduce']:10.2f} "
              f"{m['update']:7.2f} {m['allreduce_alone']:16.3f} {share:15.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
