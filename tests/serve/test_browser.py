"""End to end in headless Chromium (Playwright): draw a "1" and a "0" with the mouse and read
the page's prediction; train one epoch from the Learn page and watch the curves fill.

Debian's chromium is driven through ``executable_path`` (Playwright cannot download its own
browser here). ``DELTANET_SCREENSHOTS=1`` also saves docs/images/playground_{draw,learn}.png.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="playwright is not installed (the test extra has it)")

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
     if p and os.path.isfile(p)),
    None,
)  # fmt: skip
if CHROMIUM is None:
    pytest.skip(
        "no Chromium on this machine: apt-get install -y chromium (as .ci/run does); "
        "Playwright cannot download its own browser here",
        allow_module_level=True,
    )
IMAGES = Path(__file__).parents[2] / "docs" / "images"
SCREENSHOTS = os.environ.get("DELTANET_SCREENSHOTS") == "1"
# As root in a closed network: no sandbox, and none of Chromium's own calls home.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def page(live_server):
    from playwright.sync_api import sync_playwright

    url, _ = live_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.errors = errors
        page.goto(url)
        page.wait_for_function("() => window.drawState && window.drawState.model")
        yield page
        browser.close()


def _drag(page, points) -> None:
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=2)
    page.mouse.up()


def _prediction(page) -> str:
    page.wait_for_function(
        "() => { const s = window.drawState; "
        "return s.version > 0 && s.answered === s.version && !s.inFlight; }"
    )
    return page.locator("#prediction").get_attribute("data-class")


def test_draw_a_one_and_a_zero(page):
    page.click("#clear")
    _drag(page, [(140, 45 + 10 * i) for i in range(20)])  # one vertical stroke
    assert _prediction(page) == "1"
    page.click("#clear")
    loop = [(140 + 55 * math.sin(t / 20 * math.tau), 140 - 95 * math.cos(t / 20 * math.tau))
            for t in range(22)]  # fmt: skip
    _drag(page, loop)
    assert _prediction(page) == "0"
    layers = page.locator("#layers .layer .title").all_inner_texts()
    assert layers[0].startswith("0: Conv2D") and "(32, 8, 8)" in layers[0]
    assert len(layers) == 9 and "(10)" in layers[-1]
    if SCREENSHOTS:
        page.screenshot(path=str(IMAGES / "playground_draw.png"), full_page=True)
    assert page.errors == []


def test_train_one_epoch_from_the_page(page, live_server):
    _, runs = live_server
    page.click("#tab-learn")
    page.wait_for_function("() => document.querySelector('#model').options.length > 0")
    page.fill("#epochs", "1")
    page.click("#train")
    page.wait_for_function(
        "() => Number(document.querySelector('#loss-chart').dataset.points) > 0", timeout=60_000
    )
    page.wait_for_selector("#learn-status[data-done]", timeout=180_000)
    assert page.locator("#learn-status").get_attribute("data-done") == "done"
    state = page.evaluate("() => ({run: window.learnState.run, n: window.learnState.loss.length})")
    assert state["n"] == 41  # every batch of the epoch (1,293 digits in batches of 32)
    run = Path(state["run"])
    assert run.parent == runs and (run / "model.safetensors").is_file()
    assert "test accuracy" in page.locator("#learn-status").inner_text()
    if SCREENSHOTS:
        page.screenshot(path=str(IMAGES / "playground_learn.png"), full_page=True)
    assert page.errors == []
