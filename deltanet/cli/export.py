"""``deltanet export``: being written in this session (placeholder so the parser builds)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("export", help="(being written)")


def run(args: argparse.Namespace) -> int:
    raise RuntimeError("deltanet export: being written")
