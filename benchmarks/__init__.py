"""Speed and memory of deltanet side by side with PyTorch: ``python -m benchmarks``.

Each workload gives a deltanet step and the same step in PyTorch; ``harness.compare`` runs them
in one process, interleaved, and reports the medians. ``memory`` measures the peak resident set
of a LeNet-5 training run in a fresh child process per framework.
"""
