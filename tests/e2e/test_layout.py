"""Every page readable at 1280×800 and on a 420 px window, light and dark (the theme follows the
system until the user picks one), nothing wider than the window, and no text drawn over other
text, with fifty jobs on the server. The screenshots are saved for a reviewer to look at:
`layout-<page>-<width>-<theme>.png` under the folder the test command prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2etest import App, overlapping_text
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

PAGES = {"explorer": "/", "examples": "/examples", "lesson": "/lesson", "lab": "/lab"}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_in_light_dark_and_narrow(
    app: App, artifacts_dir: Path, name: str, fifty_jobs: None
) -> None:
    page = app.page
    page.emulate_media(color_scheme="dark")
    app.open(PAGES[name])
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")  # follows the system
    if name == "examples":  # an example run, so its timeline has something to show
        page.click('button[data-run="getsum"]')
        expect(page.locator("#ex-getsum .result")).to_have_attribute(
            "data-ok", "true", timeout=30_000
        )
    if name == "explorer":  # the fifty jobs are on screen: the tree lists them all
        expect(page.locator("#tree .node[data-job]")).to_have_count(
            page.evaluate("window.ipcExplorer.store.jobs.size"), timeout=10_000
        )
        assert page.locator("#tree .node[data-job]").count() >= 50
    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for width, theme in ((1280, "dark"), (420, "dark"), (420, "light"), (1280, "light")):
        page.set_viewport_size({"width": width, "height": 800})
        if html.get_attribute("data-theme") != theme:
            page.click("#theme-toggle")  # the user's choice wins over the system's
        expect(html).to_have_attribute("data-theme", theme)
        # Text colour and background really changed (not only an attribute).
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (bg == "rgb(18, 21, 27)") == (theme == "dark"), bg
        # Charts follow their box on the next frames (ResizeObserver): wait for it, then check.
        fits = "document.documentElement.scrollWidth - window.innerWidth <= 1"
        try:
            page.wait_for_function(fits, timeout=5000)
        except PlaywrightTimeoutError:
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            pytest.fail(f"{name} at {width}px is {overflow}px wider than the window")
        expect(page.locator("#feed-status")).to_have_attribute("data-state", "live")
        # Views redraw on the next frames after a resize: let two frames pass before reading.
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        boxes, overlaps = overlapping_text(page)
        assert boxes > 20, f"{name}: only {boxes} pieces of text found"
        assert not overlaps, f"{name} at {width}px, {theme}: text over text:\n" + "\n".join(
            overlaps
        )
        tall = page.evaluate("document.documentElement.scrollHeight") > 4000
        page.screenshot(path=str(shots / f"layout-{name}-{width}-{theme}.png"), full_page=not tall)
    # Keyboard: the first Tab on a fresh page lands on the skip link, which leads to the content.
    page.reload()
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    expect(html).to_have_attribute("data-theme", "light")  # the choice was kept


def test_the_overlap_check_sees_text_over_text(page: Page) -> None:
    """The check the screenshots rely on: text drawn over text is found; text side by side,
    hidden, or scrolled out of its box is not."""
    page.set_content(
        """<div style="font: 14px/20px monospace">
          <span style="position:absolute; left:10px; top:10px">exit SIGTERM</span>
          <span style="position:absolute; left:40px; top:16px">close SIGTERM</span>
          <span style="position:absolute; left:10px; top:60px">side</span>
          <span style="position:absolute; left:60px; top:60px">by side</span>
          <span style="position:absolute; left:10px; top:60px" hidden>hidden</span>
          <div style="position:absolute; left:10px; top:100px; height:20px; overflow:hidden">
            <div>in view</div><div>scrolled out</div></div>
          <span style="position:absolute; left:10px; top:121px">below the box</span>
        </div>"""
    )
    boxes, overlaps = overlapping_text(page)
    assert boxes == 6  # "scrolled out" and the hidden span are not seen
    assert len(overlaps) == 1 and "exit SIGTERM" in overlaps[0] and "close SIGTERM" in overlaps[0]
