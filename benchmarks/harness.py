"""Summaries of the per-process runs (``summarize``, the tables), and the old shared-process mode.

``python -m benchmarks`` times each framework in processes of its own (``benchmarks.child``);
``summarize`` turns the rounds of one workload into a row: each framework's median over the
rounds of the per-process median step time, the spread (min-max) over the rounds, the ratio
of the medians and the peak resident set of the processes.

The rest is the old mode (``--shared-process``): both frameworks run in the same process and
take turns in short blocks of steps (see ``compare``). It is kept for quick looks only: each
framework's idle worker threads spin after its last step and slow the other one down
(PERF_NOTES: PyTorch's VGG-block step 37-94 ms shared against 25-34 ms alone). Its table
also gives the paired ratio: the median over the block pairs of (deltanet's block median /
PyTorch's block median).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


def blas_threads() -> int:
    """Threads of NumPy's BLAS (threadpoolctl when installed, else 2, this project's machine)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 2
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 2


def setup_torch(threads: int):
    """Import torch with ``threads`` intra-op threads (same as NumPy's BLAS); None if absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


@dataclass
class Result:
    """One workload's row of the table (times in milliseconds per step)."""

    name: str
    batch: int
    steps: int
    deltanet_ms: float
    torch_ms: float | None
    deltanet_min_ms: float = 0.0
    torch_min_ms: float | None = None
    target: float | None = None
    paired_ratio: float | None = None  # median over block pairs of the ratio of block medians

    @property
    def ratio(self) -> float | None:
        return None if self.torch_ms is None else self.deltanet_ms / self.torch_ms

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["deltanet_images_per_s"] = 1000.0 * self.batch / self.deltanet_ms
        d["torch_images_per_s"] = (
            None if self.torch_ms is None else 1000.0 * self.batch / self.torch_ms
        )
        return d


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def _settle(fn: Callable[[], object], seconds: float) -> None:
    """Run ``fn`` untimed for ``seconds`` (at least once)."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def compare(
    name: str,
    batch: int,
    ours: Callable[[], object],
    theirs: Callable[[], object] | None,
    steps: int = 20,
    warmup: int = 3,
    target: float | None = None,
    block: int = 5,
    settle: float = 0.2,
) -> Result:
    """Median ms per step of ``ours`` and ``theirs`` over ``steps`` steps each, interleaved.

    The frameworks take turns in blocks of ``block`` timed steps. Before each block the
    framework runs untimed for ``settle`` seconds (at least one step): right after a switch the
    other framework's idle worker threads still spin on the two cores. OpenBLAS's spin for about
    0.1 s after deltanet's last GEMM: PyTorch's LeNet-5 step at batch 64 then measured 43.6,
    17.3, 16.5, 14.0, 12.6 and 10.4 ms, and 8 ms only from about 130 ms after the switch on.
    One untimed step, as this harness had before, timed PyTorch at 14 ms instead of 8 there
    (and alternating single steps at 28-30 ms against 12.5), which flattered deltanet.
    """
    for _ in range(warmup):
        ours()
        if theirs is not None:
            theirs()
    a: list[float] = []
    b: list[float] = []
    pairs: list[float] = []
    while len(a) < steps:
        n = min(block, steps - len(a))
        for fn, times in ((ours, a), (theirs, b)):
            if fn is None:
                continue
            _settle(fn, settle)  # untimed: the previous framework's threads go quiet
            times.extend(_time(fn) for _ in range(n))
        if theirs is not None:
            pairs.append(statistics.median(a[-n:]) / statistics.median(b[-n:]))
    return Result(
        name,
        batch,
        steps,
        statistics.median(a),
        statistics.median(b) if b else None,
        min(a),
        min(b) if b else None,
        target,
        statistics.median(pairs) if pairs else None,
    )


def format_table(results: list[Result], memory: list[dict] | None = None) -> str:
    """A markdown table of the results (and the memory rows when measured)."""
    lines = [
        "| workload | batch | deltanet ms | PyTorch ms | deltanet img/s | PyTorch img/s "
        "| ratio | paired ratio | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        d = r.as_dict()
        tms = "-" if r.torch_ms is None else f"{r.torch_ms:.2f}"
        tips = "-" if r.torch_ms is None else f"{d['torch_images_per_s']:.0f}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        paired = "-" if r.paired_ratio is None else f"{r.paired_ratio:.2f}"
        target = "-" if r.target is None else f"<= {r.target:g}"
        lines.append(
            f"| {r.name} | {r.batch} | {r.deltanet_ms:.2f} | {tms} | "
            f"{d['deltanet_images_per_s']:.0f} | {tips} | {ratio} | {paired} | {target} |"
        )
    if memory:
        lines += [
            "",
            "| peak memory (LeNet-5 train) | batch | steps | peak RSS MiB | "
            "RSS after imports MiB | growth MiB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for m in memory:
            lines.append(
                f"| {m['framework']} | {m['batch']} | {m['steps']} | {m['peak_mib']:.1f} | "
                f"{m['base_mib']:.1f} | {m['peak_mib'] - m['base_mib']:.1f} |"
            )
    return "\n".join(lines)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarize(name: str, runs: list[dict], target: float | None = None) -> dict:
    """One workload's row from its child processes' JSON (all rounds, both frameworks)."""
    row: dict = {"name": name, "target": target, "batch": runs[0]["batch"] if runs else None}
    for fw in ("deltanet", "torch"):
        mine = [r for r in runs if r["framework"] == fw]
        ms = [r["median_ms"] for r in mine]
        ips = [r["images_per_s"] for r in mine]
        row[f"{fw}_ms"] = _median(ms)
        row[f"{fw}_ms_rounds"] = ms
        row[f"{fw}_ms_spread"] = [min(ms), max(ms)] if ms else None
        row[f"{fw}_images_per_s"] = _median(ips)
        row[f"{fw}_peak_mib"] = max((r["peak_mib"] for r in mine), default=None)
    d, t = row["deltanet_ms"], row["torch_ms"]
    row["ratio"] = None if d is None or t is None else d / t
    return row


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _spread(s: list[float] | None) -> str:
    return "-" if not s else f"{s[0]:.2f}-{s[1]:.2f}"


def format_rounds_table(rows: list[dict]) -> str:
    """The markdown table of ``summarize`` rows."""
    lines = [
        "| workload | batch | deltanet ms | spread | PyTorch ms | spread | ratio "
        "| deltanet img/s | PyTorch img/s | peak MiB deltanet | peak MiB PyTorch | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        target = "-" if r["target"] is None else f"<= {r['target']:g}"
        lines.append(
            f"| {r['name']} | {r['batch']} | {_fmt(r['deltanet_ms'])} "
            f"| {_spread(r['deltanet_ms_spread'])} | {_fmt(r['torch_ms'])} "
            f"| {_spread(r['torch_ms_spread'])} | {_fmt(r['ratio'])} "
            f"| {_fmt(r['deltanet_images_per_s'], '.0f')} | {_fmt(r['torch_images_per_s'], '.0f')} "
            f"| {_fmt(r['deltanet_peak_mib'], '.0f')} | {_fmt(r['torch_peak_mib'], '.0f')} "
            f"| {target} |"
        )
    return "\n".join(lines)


def machine_block(info: dict, args) -> str:
    """The machine and the method, as lines of text above the table."""
    from benchmarks import machine

    lines = [
        f"machine: {info['cpu_model']}, {machine.isa_summary(info['isa'])}, "
        f"{info['logical_cores']} logical cores; ISA flags: {' '.join(info['isa']) or '-'}",
        f"threads: {info['threads']} for both frameworks (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS, "
        f"threadpoolctl, torch.set_num_threads)",
    ]
    if info.get("blas_env"):
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in info["blas_env"].items()))
    np_side = info.get("numpy_side")
    if np_side:
        lines.append(
            f"deltanet: NumPy {np_side['numpy']}, BLAS {machine.blas_summary(np_side)}, numba "
            f"{np_side['numba'] or 'absent'}, deltanet.fast "
            f"{'on' if np_side['deltanet_fast'] else 'off'}"
        )
    if info.get("torch_side"):
        lines.append(f"PyTorch: {machine.torch_summary(info['torch_side'])}")
    lines.append(
        f"method: each framework in a fresh process per workload and round, {args.rounds} "
        f"rounds alternating which framework goes first; per process {args.warmup} warm-up "
        f"steps, {args.settle:g} s settle, median of {args.steps} timed steps; main job: "
        f"median images/s over epochs 2-{args.epochs}; table: median over rounds, spread "
        f"min-max over rounds, ratio deltanet/PyTorch of the medians (> 1: deltanet slower)"
    )
    return "\n".join(lines)
