"""The process panel scales (issue 10, part 3): with fifty jobs and more it scrolls inside its own
panel, never the page; it filters running / finished / failed, searches, folds finished jobs
away, groups children under their parent with a count, and is driven from the keyboard."""

from __future__ import annotations

import re

from e2etest import SLOW, App
from playwright.sync_api import Page, expect

JOB_NODES = "#tree .node[data-job]"


def shown_states(page: Page) -> list[str]:
    return page.locator(f"{JOB_NODES} > .state").all_inner_texts()


def open_with_jobs(app: App) -> Page:
    page = app.open("/")
    total = page.evaluate("window.ipcExplorer.store.jobs.size")
    expect(page.locator(JOB_NODES)).to_have_count(total, timeout=SLOW)
    assert total >= 50
    return page


def test_the_panel_scrolls_inside_itself_not_the_page(app: App, fifty_jobs: None) -> None:
    page = open_with_jobs(app)
    panel = page.locator("#tree-scroll")
    height, scroll_height = panel.evaluate("el => [el.clientHeight, el.scrollHeight]")
    assert scroll_height > height + 200, (height, scroll_height)
    assert height <= 640
    # The page is as tall with fifty jobs as a screenful or two, not 5,000 px.
    assert page.evaluate("document.documentElement.scrollHeight") < 2600
    # Scrolling the list moves the list, not the page.
    panel.scroll_into_view_if_needed()
    page_y = page.evaluate("window.scrollY")
    box = panel.bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 100))
    # It starts at its end (the newest jobs are last): the wheel goes up the list.
    at_end = panel.evaluate("el => el.scrollTop")
    assert at_end > 0
    page.mouse.wheel(0, -600)
    expect(panel).not_to_have_js_property("scrollTop", at_end)
    assert page.evaluate("window.scrollY") == page_y


def choose(page: Page, phase: str) -> list[str]:
    """Click a filter chip; once the list shows as many jobs as the chip counts, their states."""
    chip = page.locator("#tree-filters label", has_text=phase)
    chip.click()
    expect(chip.locator("input")).to_be_checked()
    count = int(chip.locator(".n").inner_text())
    expect(page.locator(JOB_NODES)).to_have_count(count)
    return shown_states(page)


def test_filters_search_and_hide_finished(app: App, fifty_jobs: None) -> None:
    page = open_with_jobs(app)
    total = page.locator(JOB_NODES).count()

    failed = choose(page, "failed")
    assert failed, "the fifty jobs include failures"
    assert all(re.match(r"^(exited [1-9]\d*|signaled|failed)", s) for s in failed), failed

    running = choose(page, "running")
    assert running and all(s in ("running", "starting") for s in running), running

    finished = choose(page, "finished")
    assert finished and set(finished) == {"exited 0"}, set(finished)
    assert len(failed) + len(running) + len(finished) == total

    assert len(choose(page, "all")) == total
    page.fill("#tree-search", "grandchildren")
    expect(page.locator(JOB_NODES)).not_to_have_count(total)
    names = page.locator(f"{JOB_NODES} > .name").all_inner_texts()
    assert names and all("grandchildren" in n for n in names), names
    page.fill("#tree-search", "")
    expect(page.locator(JOB_NODES)).to_have_count(total)

    # Hide finished: the jobs that ended well fold into one line that says how many.
    page.check("#tree-hide-finished")
    expect(page.locator(JOB_NODES)).to_have_count(total - len(finished))
    assert "exited 0" not in shown_states(page)
    expect(page.locator("#tree-hidden")).to_contain_text(f"{len(finished)} finished")
    page.uncheck("#tree-hide-finished")
    expect(page.locator(JOB_NODES)).to_have_count(total)


def test_children_grouped_with_a_count_and_keyboard_navigation(app: App, fifty_jobs: None) -> None:
    page = open_with_jobs(app)
    parent = page.locator(JOB_NODES, has_text="grandchildren.py 2 600").first  # still running
    expect(parent.locator(".kids")).to_have_text("2 children", timeout=SLOW)
    job = parent.get_attribute("data-job")
    kids = page.locator(f'#tree .node[data-parent="{job}"]')
    expect(kids).to_have_count(2)
    assert (
        parent.get_attribute("aria-level") == "2" and kids.first.get_attribute("aria-level") == "3"
    )

    # Arrow keys move through the tree; Left folds a parent, Right opens it and steps in.
    parent.focus()
    expect(parent).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowLeft")
    expect(parent).to_have_attribute("aria-expanded", "false")
    expect(kids).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(parent).to_have_attribute("aria-expanded", "true")
    expect(kids).to_have_count(2)
    page.keyboard.press("ArrowRight")
    expect(kids.first).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(parent).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(kids.first).to_be_focused()

    page.keyboard.press("Home")
    expect(page.locator("#tree .server-node")).to_be_focused()
    page.keyboard.press("ArrowDown")
    first = page.locator(JOB_NODES).first
    expect(first).to_be_focused()
    page.keyboard.press("End")
    last = page.locator("#tree .node").last
    expect(last).to_be_focused()
    # The list scrolled to keep the focused node in view, inside the panel.
    assert last.evaluate(
        "el => { const p = document.querySelector('#tree-scroll').getBoundingClientRect();"
        " const r = el.getBoundingClientRect();"
        " return r.top >= p.top - 1 && r.bottom <= p.bottom + 1; }"
    )
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(first).to_have_attribute("aria-selected", "true")
    expect(page.locator("#job-title")).to_contain_text(f"#{first.get_attribute('data-number')} · ")
    # One tab stop: Tab leaves the tree.
    page.keyboard.press("Tab")
    expect(first).not_to_be_focused()
