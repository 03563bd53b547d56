"""MkDocs hook: pages quote the command line's own help and recipe table, so they cannot drift.

- ``<!-- deltanet-help: COMMAND -->`` becomes the help text of ``deltanet COMMAND`` (``<!--
  deltanet-help: -->``: of ``deltanet``), at 100 columns; a command the parser does not have
  fails the build;
- ``<!-- deltanet-recipes -->`` becomes the table of training recipes (``cli/recipes.py``);
- ``<!-- deltanet-main-job -->`` becomes the main job (``deltanet train`` without flags) written
  out with every setting it uses: the defaults with the digits recipe over them.
"""

from __future__ import annotations

import argparse
import os
import re

HELP = re.compile(r"<!-- deltanet-help:\s*(?P<command>[\w-]*)\s*-->")
RECIPES = "<!-- deltanet-recipes -->"
MAIN_JOB = "<!-- deltanet-main-job -->"
# The main job's settings as flags, in this order (the others keep their defaults).
MAIN_JOB_FLAGS = ("model", "data", "epochs", "batch_size", "optimizer", "lr", "lr_policy",
                  "augment", "seed")  # fmt: skip


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


def _main_job() -> str:
    from deltanet.cli.common import TRAIN_DEFAULTS, default_model
    from deltanet.cli.recipes import find_recipe

    settings = dict(TRAIN_DEFAULTS)
    settings["model"] = settings["model"] or default_model((1, 8, 8))
    recipe = find_recipe(settings["model"], settings["data"])
    settings.update(recipe.settings if recipe else {})
    flags = [f"--{key.replace('_', '-')} {settings[key]}" for key in MAIN_JOB_FLAGS]
    lines = ["deltanet train"]
    for flag in flags:  # three flags a line
        if len(lines[-1].split(" --")) > 3:
            lines[-1] += " \\"
            lines.append("              ")
        lines[-1] += f" {flag}"
    return "```bash\n" + "\n".join(lines) + "\n```"


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = HELP.sub(lambda m: f"```text\n{_help(m['command'])}\n```", markdown)
    if RECIPES in markdown:
        from deltanet.cli.recipes import markdown_table

        markdown = markdown.replace(RECIPES, markdown_table())
    if MAIN_JOB in markdown:
        markdown = markdown.replace(MAIN_JOB, _main_job())
    return markdown
