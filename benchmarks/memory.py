"""Peak memory of a LeNet-5 training run, each framework in a fresh child process.

tracemalloc sees only NumPy's allocations and nothing of PyTorch's allocator, so the two cannot
be compared that way. Instead each framework runs ``steps`` training steps in its own child
Python process (the deltanet child never imports torch) and reports the peak resident set size
(``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` would not do, Linux carries the parent's
high-water mark over ``fork`` + ``exec``) twice: after the imports, the model and the data
are set up (``base``), and after the steps (``peak``). ``peak - base`` is what training itself
adds; ``peak`` also counts each library's code (PyTorch's shared libraries are large).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def _max_rss_mib() -> float:
    """The process's peak resident set in MiB (``VmHWM``; ``ru_maxrss`` where /proc is absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(framework: str, batch: int, steps: int, threads: int) -> dict:
    """Run in the child: build, measure the base, train ``steps`` steps, measure the peak."""
    from benchmarks import models

    model, shape = models.build("lenet5")
    x, y = models.data(shape, batch)
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        step = models.torch_train(models.to_torch(model, torch), x, y, torch)
    else:
        step = models.deltanet_train(model, x, y)
    base = _max_rss_mib()
    for _ in range(steps):
        step()
    return {
        "framework": framework,
        "batch": batch,
        "steps": steps,
        "base_mib": base,
        "peak_mib": _max_rss_mib(),
    }


def measure(framework: str, batch: int = 256, steps: int = 20, threads: int = 2) -> dict:
    """Spawn the child for ``framework`` ("deltanet" or "torch") and return its figures."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        framework,
        str(batch),
        str(steps),
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    fw, b, s, t = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(child(fw, b, s, t)))
