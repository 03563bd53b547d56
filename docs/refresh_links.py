"""Check, or refresh, the line numbers of the source links in the docs.

A link to code is written with a marker next to it:

    [dense.py](../deltanet/ops/dense.py#L43-L44) <!-- expects: dx = dy @ w -->

and the linked range must contain the marker text; by convention the range *ends* on the line
that holds the marker and starts above it (the comment that states the formula). When the code
moves, ``python docs/refresh_links.py`` rewrites every stale range: it finds the marker in the
file (the occurrence nearest the old range when there are several), ends the range there and
keeps its length. ``--check`` only reports stale links (exit status 1), as tests/test_docs.py.

    python docs/refresh_links.py [--check] [docs/backprop.md ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent
LINK = re.compile(
    r"\]\((?P<path>\.\./[^)#\s]+)#L(?P<start>\d+)(?:-L(?P<end>\d+))?\)\s*"
    r"<!-- expects: (?P<marker>.+?) -->"
)


@dataclass
class Link:
    doc: Path
    path: Path  # the linked source file, resolved
    start: int
    end: int
    marker: str
    span: tuple[int, int]  # where "#L..-L.." sits in the doc's text

    def lines(self) -> list[str] | None:
        return self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else None

    def problem(self) -> str | None:
        """Why the link is stale, or None when its range holds the marker."""
        lines = self.lines()
        if lines is None:
            return f"{self.path} does not exist"
        if not 1 <= self.start <= self.end <= len(lines):
            return f"lines {self.start}-{self.end} are outside the file ({len(lines)} lines)"
        if not any(self.marker in line for line in lines[self.start - 1 : self.end]):
            return f"lines {self.start}-{self.end} do not contain {self.marker!r}"
        return None

    def refreshed(self) -> tuple[int, int] | None:
        """The new (start, end), or None when the marker is nowhere in the file."""
        lines = self.lines() or []
        hits = [i + 1 for i, line in enumerate(lines) if self.marker in line]
        if not hits:
            return None
        end = min(hits, key=lambda i: abs(i - self.end))
        return max(1, end - (self.end - self.start)), end


def find_links(doc: Path) -> list[Link]:
    """Every marked source link of ``doc``."""
    text = doc.read_text(encoding="utf-8")
    links = []
    for m in LINK.finditer(text):
        start = int(m["start"])
        end = int(m["end"] or start)
        span = (m.start("start") - 2, m.end("end") if m["end"] else m.end("start"))
        path = (doc.parent / m["path"]).resolve()
        links.append(Link(doc, path, start, end, m["marker"], span))
    return links


def refresh(doc: Path, check: bool) -> list[str]:
    """Rewrite the stale ranges of ``doc`` (unless ``check``); return the problems found."""
    text, problems = doc.read_text(encoding="utf-8"), []
    for link in reversed(find_links(doc)):  # from the end: earlier spans stay valid
        problem = link.problem()
        if problem is None:
            continue
        new = None if check else link.refreshed()
        if new is None:
            problems.append(f"{doc.name}: {link.path.name}#L{link.start}-L{link.end}: {problem}")
            continue
        lo, hi = link.span
        text = text[:lo] + f"#L{new[0]}-L{new[1]}" + text[hi:]
        print(f"{doc.name}: {link.path.name} L{link.start}-L{link.end} -> L{new[0]}-L{new[1]}")
    if not check:
        doc.write_text(text, encoding="utf-8")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="*", type=Path, help="default: every docs/*.md")
    parser.add_argument("--check", action="store_true", help="report stale links, change nothing")
    args = parser.parse_args()
    problems = []
    for doc in args.docs or sorted(DOCS.glob("*.md")):
        problems += refresh(doc, args.check)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
