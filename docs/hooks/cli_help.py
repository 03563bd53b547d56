"""MkDocs hook: ``<!-- deltanet-help: COMMAND -->`` in a page becomes ``deltanet COMMAND --help``.

The command line reference quotes the parser itself, so it cannot drift from the code:
``<!-- deltanet-help: train -->`` is replaced by the help text of ``deltanet train`` and
``<!-- deltanet-help: -->`` by that of ``deltanet``, at 100 columns. A command the parser does
not have fails the build.
"""

from __future__ import annotations

import argparse
import os
import re

MARKER = re.compile(r"<!-- deltanet-help:\s*(?P<command>[\w-]*)\s*-->")


def _help(command: str) -> str:
    from deltanet.cli.main import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width
    parser = build_parser()
    if command:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if command not in subparsers.choices:
            raise ValueError(f"docs: no command 'deltanet {command}' for <!-- deltanet-help -->")
        parser = subparsers.choices[command]
    return parser.format_help().rstrip()


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda m: f"```text\n{_help(m['command'])}\n```", markdown)
