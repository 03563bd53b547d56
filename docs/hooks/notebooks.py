"""MkDocs hook for the tutorial notebooks: their links become site links, and their time is told.

A notebook links to the other pages as files (``../backprop.md``, ``other.ipynb#a-heading``),
which work in Jupyter and on a repository's file view. MkDocs rewrites such links in Markdown
pages but not in the HTML that mkdocs-jupyter makes of a notebook, so this hook does it: each
``href`` to a ``.md`` or ``.ipynb`` file becomes the URL of that page, and a link to a page that
does not exist is a warning, which fails ``mkdocs build --strict``. It also logs how long each
notebook took to render (to run, when ``DELTANET_DOCS_EXECUTE=true``), and puts a download link
to the ``.ipynb`` (which mkdocs-jupyter's ``include_source`` copies beside the page) under the
notebook's title.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time

log = logging.getLogger("mkdocs.hooks.notebooks")
HREF = re.compile(r'href="(?P<target>[^":#?]+\.(?:md|ipynb))(?P<anchor>#[^"]*)?"')
_started: dict[str, float] = {}


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        _started[page.file.src_uri] = time.perf_counter()  # the notebook renders next
    return markdown


def on_page_content(html: str, page, config, files) -> str:
    src = page.file.src_uri
    if not src.endswith(".ipynb"):
        return html
    if src in _started:
        log.info(f"{src}: rendered in {time.perf_counter() - _started.pop(src):.1f} s")
    here = posixpath.dirname(src)

    def relink(m: re.Match) -> str:
        target = posixpath.normpath(posixpath.join(here, m["target"]))
        file = files.get_file_from_path(target)
        if file is None:
            log.warning(
                f"Doc file '{src}' contains a link '{m['target']}', but the target "
                f"'{target}' is not found among documentation files."
            )
            return m[0]
        return f'href="{file.url_relative_to(page.file)}{m["anchor"] or ""}"'

    name = posixpath.basename(src)
    download = (
        f'<p class="notebook-download"><a href="{name}" download>Download the notebook '
        f"(<code>{name}</code>)</a> to run it yourself.</p>\n"
    )
    html = HREF.sub(relink, html)
    at = html.find("</h1>")  # under the notebook's title, when it has one
    at = at + len("</h1>") if at >= 0 else 0
    return html[:at] + download + html[at:]
