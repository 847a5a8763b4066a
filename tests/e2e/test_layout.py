"""Every page readable at 1280×800, 1024 px and on a 420 px window, light and dark (the theme
follows the system until the user picks one), nothing wider than the window, no text drawn over
other text, and no text cut off or sticking out sideways (a control past its panel's edge, a
placeholder or a lane's subtitle cut short) nor, from 1024 px up, hidden in a box until
scrolled sideways (a table's last column, a code line's end), with fifty jobs on the server.
The screenshots are saved for a reviewer to look at: `layout-<page>-<width>-<theme>.png` under
the folder the test command prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2etest import App, cut_text, overlapping_text, scrolls_sideways
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
    for width, theme in (
        (1280, "dark"),
        (1024, "dark"),
        (420, "dark"),
        (420, "light"),
        (1280, "light"),
    ):
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
        cut = cut_text(page)
        assert not cut, f"{name} at {width}px, {theme}: text that does not fit:\n" + "\n".join(cut)
        if width >= 1024:  # on a phone a wide table may scroll in its box; not on a desktop
            sideways = scrolls_sideways(page)
            assert not sideways, f"{name} at {width}px: scrolls sideways:\n" + "\n".join(sideways)
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


def test_the_cut_text_check_sees_what_does_not_fit(page: Page) -> None:
    """The check the layout test relies on for what the overlap check cannot see: a label past
    its box's side, text cut by an ellipsis, a placeholder or a chosen option wider than its
    field; not text that fits, nor what a box scrolls sideways, nor a screen reader's label."""
    page.set_content(
        """<div style="font: 14px/20px sans-serif; width: 300px">
          <div id="tools" style="display: flex; width: 200px">
            <input style="flex: 0 0 150px">
            <label style="flex: 0 0 auto; white-space: nowrap">hide finished</label></div>
          <div style="width: 80px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap"
            >pid 24852 · signaled SIGTERM</div>
          <div style="width: 200px; overflow: hidden; white-space: nowrap">fits</div>
          <input style="width: 120px; padding: 4px" placeholder="search: id, program, pid, state">
          <input style="width: 280px; padding: 4px" placeholder="fits in its field">
          <input type="text" class="fitted" placeholder="fits a text field, not a search">
          <input type="search" class="fitted" placeholder="fits a text field, not a search">
          <select style="width: 120px"><option>fork — a shipped program, with a channel</option>
            </select>
          <select style="width: 200px"><option>fork</option></select>
          <pre style="width: 100px; overflow: auto">a line that scrolls sideways in its box</pre>
          <span style="position: absolute; width: 1px; height: 1px; overflow: hidden;
            clip: rect(0 0 0 0); white-space: nowrap">for screen readers only</span>
        </div>"""
    )
    # Two fields 8 px wider than their placeholder: room enough, unless the field keeps room
    # for a clear button (a search field does, 15 px, even while it is empty).
    page.evaluate(
        """() => { for (const el of document.querySelectorAll(".fitted")) {
          const r = document.createElement("span");
          r.style.cssText = "position: absolute; white-space: pre; font: 14px sans-serif";
          r.textContent = el.placeholder;
          document.body.append(r);
          el.style.cssText = `font: 14px sans-serif; padding: 0 4px; border: 0;
            box-sizing: content-box; width: ${r.getBoundingClientRect().width + 8}px`;
          r.remove(); } }"""
    )
    found = cut_text(page)
    assert len(found) == 5, found
    assert any(f.startswith("sticks out: 'hide finished'") for f in found), found
    assert any(f.startswith("cut: 'pid 24852 · signaled SIGTERM'") for f in found), found
    assert any(f.startswith("placeholder cut: 'search: id, program, pid, state'") for f in found)
    assert any(
        f.startswith("placeholder cut: 'fits a text field, not a search' (input.fitted)")
        for f in found
    ), found
    assert any(f.startswith("option cut: 'fork — a shipped program") for f in found), found


def test_the_sideways_check_sees_a_box_hiding_what_it_holds(page: Page) -> None:
    page.set_content(
        """<div style="width: 200px; overflow: auto"><table style="min-width: 640px">
             <tr><td>where</td><td>worst heartbeat</td></tr></table></div>
           <pre style="width: 200px; overflow: auto; white-space: pre-wrap">a line that wraps
             in its box rather than scrolling it sideways</pre>
           <div style="width: 200px; overflow: hidden"><div style="width: 640px">cut</div></div>"""
    )
    found = scrolls_sideways(page)
    assert len(found) == 1 and found[0].startswith("div holds 640 px in 200 px"), found
