"""``deltanet pack``: being written in this session (placeholder so the parser builds)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("pack", help="(being written)")


def run(args: argparse.Namespace) -> int:
    raise RuntimeError("deltanet pack: being written")
