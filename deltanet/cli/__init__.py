"""The ``deltanet`` command line: train, evaluate, predict, summary, gradcheck, plot.

Wiring only: the commands call the library (``deltanet.zoo``, ``data``, ``training``, ``io``,
``plots``); nothing in the library imports this package.
"""

from deltanet.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
