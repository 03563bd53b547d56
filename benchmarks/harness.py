"""Timing side by side: interleaved blocks of steps, medians, the threads both frameworks get.

Both frameworks run in the same process and take turns in short blocks of steps (see
``compare``), so a slow moment of the machine (other processes, turbo, caches) hits both alike;
the median of the per-step times ignores the odd outlier. On a shared machine the load also
drifts over seconds, so the table gives a second estimate of the ratio as well: the median over
the block pairs of (deltanet's block median / PyTorch's block median), which compares only
steps that ran a fraction of a second apart.
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
