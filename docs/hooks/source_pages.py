"""MkDocs hook: the derivations' links to the code become pages of the site.

docs/backprop.md links each formula to the lines that compute it, as
``../deltanet/ops/conv.py#L10-L12`` (tests/test_docs.py keeps those ranges true). Such a path
lies outside ``docs/``, so MkDocs would report it as a broken link. This hook renders each linked
repository file as a page ``source/<path>.md`` (the file with numbered lines, each line an
anchor) and points every link at it, ``#L10-L12`` becoming ``#L-10``, the anchor of line 10.
A link to a file that does not exist is left as it is, and ``mkdocs build --strict`` fails on it;
so does a link to a line past the end of the file (a missing anchor).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename

SOURCE = "source"
LINK = re.compile(r"\]\((?P<target>\.\./[^)#\s]+)(?:#L(?P<line>\d+)(?:-L\d+)?)?\)")


def _repo_path(doc: Path, target: str, docs_dir: Path) -> str | None:
    """The repository-relative path a link points to, when it is a file outside ``docs/``."""
    path = (doc.parent / target).resolve()
    root = docs_dir.parent
    if not path.is_file() or path.is_relative_to(docs_dir) or not path.is_relative_to(root):
        return None
    return path.relative_to(root).as_posix()


def _page(rel: str, text: str) -> str:
    # Raw HTML rather than a fenced block: MkDocs sees the ids of raw HTML, so a link to a line
    # that the file does not have is a broken anchor, which the strict build reports.
    lexer = get_lexer_for_filename(rel, stripnl=False)
    formatter = HtmlFormatter(linenos="table", linespans="L", wrapcode=True)  # line 10: id L-10
    html = highlight(text, lexer, formatter)
    front = "search:\n  exclude: true\nhide:\n  - navigation\n  - toc\n"
    return f"---\n{front}---\n\n# `{rel}`\n\n{html}\n"


def on_files(files: Files, config) -> Files:
    docs_dir = Path(config["docs_dir"]).resolve()
    wanted: set[str] = set()
    for file in files.documentation_pages():
        if file.abs_src_path and file.src_uri.endswith(".md"):
            doc = Path(file.abs_src_path)
            for m in LINK.finditer(doc.read_text(encoding="utf-8")):
                rel = _repo_path(doc, m["target"], docs_dir)
                if rel:
                    wanted.add(rel)
    for rel in sorted(wanted):
        text = (docs_dir.parent / rel).read_text(encoding="utf-8")
        files.append(File.generated(config, f"{SOURCE}/{rel}.md", content=_page(rel, text)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if not page.file.abs_src_path:
        return markdown
    doc, docs_dir = Path(page.file.abs_src_path), Path(config["docs_dir"]).resolve()
    here = posixpath.dirname(page.file.src_uri)

    def relink(m: re.Match) -> str:
        rel = _repo_path(doc, m["target"], docs_dir)
        if rel is None:
            return m[0]
        url = posixpath.relpath(f"{SOURCE}/{rel}.md", here or ".")
        anchor = f"#L-{m['line']}" if m["line"] else ""
        return f"]({url}{anchor})"

    return LINK.sub(relink, markdown)
