"""The documentation site: the API reference covers the public names, the notebooks are stored
with their outputs, and ``mkdocs build --strict`` fails on what would break the site (a broken
link or anchor, a missing API reference, a notebook that raises, a stale code link, an unknown
command in the CLI reference). CI builds the real site with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from tests.public_api import public_names

nbformat = pytest.importorskip("nbformat", reason="the docs extra: pip install -e '.[docs]'")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _resolve(path: str) -> object:
    """The object at a dotted path, the longest importable module first (as mkdocstrings)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def api_references() -> dict[str, str]:
    """``{identifier: page}`` for every ``::: identifier`` of the API reference."""
    refs = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for ident in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M):
            refs[ident] = page.name
    return refs


def test_api_reference_covers_every_public_name():
    documented = {id(_resolve(ident)) for ident in api_references()}
    missing = sorted(name for name, obj in public_names().items() if id(obj) not in documented)
    assert not missing, f"public names with no ::: entry in docs/api/*.md: {missing}"


def test_every_api_reference_resolves():
    for ident, page in api_references().items():
        try:
            _resolve(ident)
        except (ImportError, AttributeError) as err:
            pytest.fail(f"docs/api/{page}: ::: {ident} does not resolve ({err})")


def test_api_reference_renders_what_python_imports():
    """mkdocstrings finds objects with Griffe, which takes a submodule over a package attribute
    of the same name: ``deltanet.fit`` is the function to Python but the module
    ``deltanet/train/fit.py`` to Griffe. Such names must be given by their defining path."""
    griffe = pytest.importorskip("griffe")
    package = griffe.load("deltanet", search_paths=[str(ROOT)], resolve_aliases=True,
                          resolve_external=False)  # fmt: skip
    for ident, page in api_references().items():
        found = package[ident.removeprefix("deltanet.")]
        python = _resolve(ident)
        if found.is_module != inspect.ismodule(python):
            pytest.fail(f"docs/api/{page}: ::: {ident} renders the module {found.filepath.name} "
                        f"in the site; name the object by its defining path")  # fmt: skip


# --- the worked examples of the pages -----------------------------------------------------------

RUNS = "<!-- runs: tests/test_site.py -->\n```python\n"
EXAMPLE_PAGES = sorted(p for p in DOCS.rglob("*.md") if RUNS in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_marked_examples_run_as_written(page, tmp_path, monkeypatch):
    """Each ```python block marked ``<!-- runs: tests/test_site.py -->`` runs, in page order,
    in one namespace per page, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    text = page.read_text(encoding="utf-8")
    space: dict = {}
    for block in re.findall(re.escape(RUNS) + r"(.*?)```", text, re.S):
        exec(compile(block, str(page), "exec"), space)


def test_pages_have_marked_examples():
    assert {p.name for p in EXAMPLE_PAGES} >= {"index.md", "layers.md", "training.md"}


# --- the notebooks ------------------------------------------------------------------------------

NOTEBOOKS = sorted((DOCS / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_with_its_outputs(path):
    """The site renders stored outputs locally: every code cell ran, in order, without error."""
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    cells = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in cells]
    assert None not in counts, f"{path.name}: cells never run; run python docs/run_notebooks.py"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not run top to bottom"
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: a stored error output: {errors[0].get('ename')}"


def test_every_notebook_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"tutorials/{path.name}" in nav, f"{path.name} is not in mkdocs.yml's nav"


# --- the strict build fails on what would break the site ----------------------------------------


def _build(tmp_path: Path, pages: dict[str, str], monkeypatch, execute: bool = False) -> None:
    """Build a small site with the project's mkdocs.yml (theme, plugins, hooks, validation) and
    ``pages`` as its only pages, under ``tmp_path / "repo"``."""
    mkdocs_config = pytest.importorskip("mkdocs.config")
    from mkdocs.commands.build import build

    monkeypatch.setenv("DELTANET_DOCS_EXECUTE", "true" if execute else "false")
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    docs = tmp_path / "repo" / "docs"
    for name, text in pages.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    config = mkdocs_config.load_config(
        str(ROOT / "mkdocs.yml"),
        docs_dir=str(docs),
        site_dir=str(tmp_path / "site"),
        nav=[{name: name} for name in pages],
        strict=True,
    )
    build(config)


def _notebook(source: str, text: str = "# A notebook") -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(name="python3", display_name="Python 3", language="python")
    nb.cells = [nbformat.v4.new_markdown_cell(text), nbformat.v4.new_code_cell(source)]
    return nbformat.writes(nb)


def _code_file(tmp_path: Path) -> None:
    src = tmp_path / "repo" / "pkg" / "mod.py"
    src.parent.mkdir(parents=True)
    src.write_text("a = 1\nb = a + 1\n", encoding="utf-8")


def test_strict_build_passes_on_a_good_site(tmp_path, monkeypatch):
    """The control for the failures below: links, anchors, a code link, an API entry, the CLI
    help and an executed notebook, all sound."""
    _code_file(tmp_path)
    pages = {
        "index.md": "# Home\n\n## Part one\n\n[other](other.md#part-two) "
        "[code](../pkg/mod.py#L2-L2) [nb](nb.ipynb)\n\n::: deltanet.Dense\n",
        "other.md": "# Other\n\n## Part two\n\n<!-- deltanet-help: summary -->\n\n"
        "<!-- deltanet-recipes -->\n\n<!-- deltanet-main-job -->\n",
        "nb.ipynb": _notebook("print('computed', 6 * 7)", "# NB\n\n[back](other.md#part-two)"),
    }
    _build(tmp_path, pages, monkeypatch, execute=True)
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "source/pkg/mod.py/#L-2" in html  # the code link points at its line
    assert "deltanet.Dense" in html
    other = (tmp_path / "site/other/index.html").read_text(encoding="utf-8")
    assert "usage: deltanet summary" in other  # the parser's own help
    assert "<td><code>digits_cnn</code> / digits</td>" in other  # the recipe table
    assert "deltanet train --model digits_cnn --data digits" in other  # the main job
    notebook = (tmp_path / "site/nb/index.html").read_text()
    assert "computed 42" in notebook  # executed
    assert 'href="../other/#part-two"' in notebook  # its link to a page made a site link


@pytest.mark.parametrize(
    "page",
    [
        "[gone](missing.md)",  # a page that does not exist
        "[gone](index.md#no-such-heading)",  # an anchor that does not exist
        "[gone](../pkg/missing.py#L1-L1)",  # a code file that does not exist
        "[gone](../pkg/mod.py#L99-L99)",  # a line the code file does not have
    ],
    ids=["page", "anchor", "code-file", "code-line"],
)
def test_strict_build_fails_on_a_broken_link(tmp_path, monkeypatch, page):
    from mkdocs.exceptions import Abort

    _code_file(tmp_path)
    with pytest.raises(Abort, match="strict mode"):
        _build(tmp_path, {"index.md": f"# Home\n\n{page}\n"}, monkeypatch)


def test_strict_build_fails_on_a_broken_link_in_a_notebook(tmp_path, monkeypatch):
    from mkdocs.exceptions import Abort

    pages = {"nb.ipynb": _notebook("1", "# NB\n\n[gone](missing.md)")}
    with pytest.raises(Abort, match="strict mode"):
        _build(tmp_path, pages, monkeypatch)


def test_strict_build_fails_on_a_missing_api_reference(tmp_path, monkeypatch):
    from mkdocs.exceptions import Abort

    with pytest.raises(Abort):
        _build(tmp_path, {"index.md": "# API\n\n::: deltanet.NoSuchLayer\n"}, monkeypatch)


def test_strict_build_fails_on_an_unknown_cross_reference(tmp_path, monkeypatch):
    from mkdocs.exceptions import Abort

    with pytest.raises(Abort, match="strict mode"):
        _build(tmp_path, {"index.md": "# A\n\nSee [Nope][deltanet.NoSuchLayer].\n"}, monkeypatch)


def test_strict_build_fails_on_a_notebook_that_raises(tmp_path, monkeypatch):
    pages = {"nb.ipynb": _notebook("raise ValueError('the notebook broke')")}
    with pytest.raises(Exception, match="the notebook broke"):
        _build(tmp_path, pages, monkeypatch, execute=True)


def test_strict_build_fails_on_an_unknown_command(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="deltanet nosuch"):
        _build(tmp_path, {"index.md": "# CLI\n\n<!-- deltanet-help: nosuch -->\n"}, monkeypatch)


def test_site_is_not_committed():
    assert "site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
