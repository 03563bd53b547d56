"""The docs stay true: source links point at the lines they describe, worked examples hold."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.ops.conv import conv_backward, conv_forward

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _refresh_links():
    spec = importlib.util.spec_from_file_location("refresh_links", DOCS / "refresh_links.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


refresh_links = _refresh_links()
ALL_LINKS = [link for doc in sorted(DOCS.glob("*.md")) for link in refresh_links.find_links(doc)]


def test_backprop_links_every_formula():
    linked = {link.path.name for link in ALL_LINKS if link.doc.name == "backprop.md"}
    assert {"dense.py", "conv.py", "pool.py", "losses.py", "activations.py"} <= linked
    assert sum(link.doc.name == "backprop.md" for link in ALL_LINKS) >= 14


@pytest.mark.parametrize(
    "link", ALL_LINKS, ids=[f"{x.path.name}:{x.marker[:30]}" for x in ALL_LINKS]
)
def test_source_link_holds_its_marker(link):
    """A stale range fails here: run `python docs/refresh_links.py` after the code moves."""
    assert link.problem() is None, (
        f"{link.doc.name}: {link.path.name}#L{link.start}-L{link.end}: {link.problem()}. "
        "Refresh with: python docs/refresh_links.py"
    )


def test_relative_links_exist():
    for doc in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(((?!https?:)[^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_refresh_rewrites_a_stale_range(tmp_path):
    src = tmp_path / "pkg" / "mod.py"
    src.parent.mkdir()
    src.write_text("a = 1\n# the formula\nb = a + 1\n")
    doc = tmp_path / "docs" / "page.md"
    doc.parent.mkdir()
    doc.write_text("see [b](../pkg/mod.py#L1-L2) <!-- expects: b = a + 1 --> and more\n")
    assert refresh_links.refresh(doc, check=True)  # stale: reported, not changed
    assert "#L1-L2" in doc.read_text()
    assert refresh_links.refresh(doc, check=False) == []
    assert doc.read_text() == "see [b](../pkg/mod.py#L2-L3) <!-- expects: b = a + 1 --> and more\n"
    src.write_text("c = 0\n" * 5)  # the marker is gone: nothing to refresh to
    assert "not contain" in refresh_links.refresh(doc, check=False)[0]


# --- docs/backprop.md: the worked convolution example ---------------------------------------


def test_backprop_worked_convolution_example():
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    w = np.array([[[1.0, 0.0, -1.0]]])
    y, cache = conv_forward(x, w, np.zeros(1))
    np.testing.assert_array_equal(y, [[[-2.0, -2.0]]])
    dx, dw, db = conv_backward(np.array([[[1.0, 2.0]]]), cache)
    np.testing.assert_array_equal(dx, [[[1.0, 2.0, -1.0, -2.0]]])
    np.testing.assert_array_equal(dw, [[[5.0, 8.0, 11.0]]])
    np.testing.assert_array_equal(db, [3.0])
    text = (DOCS / "backprop.md").read_text()
    for claim in ("δx = [1, 2, -1, -2]", "∂L/∂w = [5, 8, 11]", "∂L/∂b = 3", "= [-2, -2]"):
        assert claim in text


# --- docs/convolution.md: the output-size table ----------------------------------------------


def _size_rows():
    text = (DOCS / "convolution.md").read_text()
    table = text.split("<!-- output-size-examples: begin -->")[1].split("<!-- output-size")[0]
    rows = [r.strip().strip("|").split("|") for r in table.strip().splitlines()[2:]]
    return [[cell.strip() for cell in row] for row in rows]


def _dims(cell, ndim):
    if cell in ("same", "valid"):
        return cell
    values = tuple(int(v) for v in cell.split("x"))
    return values * ndim if len(values) == 1 else values


def test_output_size_table_is_long_enough():
    layers = {row[0] for row in _size_rows()}
    assert {"Conv1D", "Conv2D", "Conv3D", "MaxPool2D"} <= layers and len(_size_rows()) >= 12


@pytest.mark.parametrize("row", _size_rows(), ids=lambda r: " ".join(r[:7]))
def test_output_size_example(row):
    name, inp, kernel, stride, padding, dilation, output = row[:7]
    ndim = int(name[-2])
    shape, expected = _dims(inp, ndim), _dims(output, ndim)
    hyper = {
        "stride": _dims(stride, ndim),
        "padding": _dims(padding, ndim),
        "dilation": _dims(dilation, ndim),
    }
    layer_cls = getattr(dn, name)
    if name.startswith("Conv"):
        layer = layer_cls(1, 1, _dims(kernel, ndim), **hyper)
    else:
        layer = layer_cls(_dims(kernel, ndim), **hyper)
    assert layer.output_shape((1, 1, *shape)) == (1, 1, *expected)
    if padding not in ("same", "valid"):  # the formula of the page, axis by axis
        for i, k, s, p, d, o in zip(shape, _dims(kernel, ndim), *hyper.values(), expected):
            assert (i + 2 * p - d * (k - 1) - 1) // s + 1 == o
