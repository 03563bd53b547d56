"""Speed and memory of deltanet side by side with PyTorch: ``python -m benchmarks``.

Each workload gives a deltanet step and the same step in PyTorch. ``__main__`` runs each
framework's step in a fresh process of its own (``child``), alternating the frameworks over
rounds, and reports the medians, their spread over the rounds, the peak memory of each process
and the machine (``machine``); ``mainjob`` is the ``deltanet train`` row. ``harness.compare``
is the old in-process mode (``--shared-process``); ``memory`` measures the peak resident set
of a LeNet-5 training run in a child process per framework.
"""
