"""What the figures were measured on: the CPU, its vector ISA, the BLAS and PyTorch's backend.

``cpu()`` reads the machine (no NumPy, no torch); ``numpy_side()`` and ``torch_side()`` are
called inside the benchmark's child processes, so they describe the libraries as each process
really ran them (threads included).
"""

from __future__ import annotations

import os
import platform

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_vpopcntdq", "amx_tile")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cores() -> int:
    """Logical cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu() -> dict:
    """CPU model, the ISA flags that matter here, logical cores, Python and the OS."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    model = info.get("model name") or platform.processor() or platform.machine()
    return {
        "cpu_model": model,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "logical_cores": cores(),
        "os_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # OPENBLAS_CORETYPE picks OpenBLAS's kernel whatever the CPU (Haswell: AVX2 only)
        "blas_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_")},
    }


def isa_summary(isa: list[str]) -> str:
    """``AVX-512 (with VPOPCNTDQ)``, ``AVX2`` or ``no AVX2``."""
    if "avx512f" in isa:
        named = (("avx512_vpopcntdq", "VPOPCNTDQ"), ("avx512_vnni", "VNNI"))
        extra = [n for f, n in named if f in isa]
        return "AVX-512" + (f" (with {', '.join(extra)})" if extra else "")
    return "AVX2" if "avx2" in isa else "no AVX2"


def _threadpools() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "filepath")
    return [{k: i.get(k) for k in keep} for i in threadpool_info()]


def numpy_side() -> dict:
    """NumPy, its BLAS (threadpoolctl: library, version, kernel, threads), numba, deltanet.fast."""
    import numpy as np

    from deltanet import fast

    try:
        import numba

        numba_version: str | None = numba.__version__
    except ImportError:
        numba_version = None
    return {
        "numpy": np.__version__,
        "threadpools": _threadpools(),
        "numba": numba_version,
        "deltanet_fast": bool(fast.enabled()),
    }


def torch_side(torch) -> dict:
    """PyTorch's version, threads, oneDNN/MKL availability and its parallel backend summary."""
    info = torch.__config__.parallel_info()
    backend = [
        line.strip()
        for line in info.splitlines()
        if line.strip().startswith(("ATen parallel backend", "Intel", "OpenMP", "std::"))
    ]
    return {
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "mkl": bool(torch.backends.mkl.is_available()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "parallel_info": backend,
        "threadpools": _threadpools(),
    }


def blas_summary(numpy_info: dict) -> str:
    """``openblas 0.3.31 (SkylakeX kernel, 2 threads)`` from ``numpy_side()``: NumPy's own BLAS
    (the one under ``numpy``'s directory; SciPy, when loaded, brings another)."""
    blas = [p for p in numpy_info.get("threadpools", []) if p.get("user_api") == "blas"]
    blas.sort(key=lambda p: "numpy" not in str(p.get("filepath", "")))
    for p in blas:
        if p:
            arch = f"{p['architecture']} kernel, " if p.get("architecture") else ""
            return f"{p['internal_api']} {p['version']} ({arch}{p['num_threads']} threads)"
    return "BLAS unknown (threadpoolctl not installed)"


def torch_summary(torch_info: dict) -> str:
    """``PyTorch 2.13 (OpenMP backend, 2 threads, oneDNN, CPU capability AVX512)``."""
    backend = next(
        (line.split(":", 1)[1].strip() for line in torch_info["parallel_info"]
         if line.startswith("ATen parallel backend")),
        "?",
    )  # fmt: skip
    extras = ", oneDNN" if torch_info["mkldnn"] else ""
    extras += ", MKL" if torch_info["mkl"] else ""
    return (
        f"PyTorch {torch_info['torch']} ({backend} backend, {torch_info['num_threads']} threads"
        f"{extras}, CPU capability {torch_info['cpu_capability']})"
    )
