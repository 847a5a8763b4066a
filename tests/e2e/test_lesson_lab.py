"""Point 6 (the heartbeat lesson), driven from its page (the transport lab: test_lab.py)."""

from __future__ import annotations

from e2etest import SLOW, App
from playwright.sync_api import expect


def test_heartbeat_spikes_inline_and_stays_flat_with_a_child(app: App) -> None:
    page = app.open("/lesson")
    beats = page.locator("#hb-count")
    expect(beats).not_to_have_text("0", timeout=SLOW)
    expect(page.locator("#hb-chart canvas")).to_be_visible()
    # Enough work to block a thread for a good fraction of a second.
    page.fill("#c-max", "20000000")

    page.click("#c-child")
    child_row = page.locator("#c-body tr[data-mode=child]")
    expect(child_row.locator(".answer")).to_have_text("结果: 199999990000000", timeout=SLOW)
    page.click("#c-inline")
    inline_row = page.locator("#c-body tr[data-mode=inline]")
    expect(inline_row.locator(".answer")).to_have_text("结果: 199999990000000", timeout=SLOW)

    child_late = float(child_row.get_attribute("data-late"))
    inline_late = float(inline_row.get_attribute("data-late"))
    assert inline_late > 100, f"inline work should make the heartbeat late, got {inline_late} ms"
    assert child_late < inline_late / 2, (child_late, inline_late)


def test_split_over_children_shows_progress_and_speed_up(app: App) -> None:
    page = app.open("/lesson")
    page.fill("#s-max", "20000000")
    page.click("#s-one")
    one = page.locator("#s-body tr[data-n='1']")
    expect(one.locator(".answer")).to_have_text("199999990000000", timeout=SLOW)
    page.fill("#s-n", "2")
    page.click("#s-many")
    two = page.locator("#s-body tr[data-n='2']")
    expect(two.locator(".answer")).to_have_text("199999990000000", timeout=SLOW)
    expect(two.locator(".speedup")).to_contain_text("×")
    bars = page.locator("#workers .progress")
    expect(bars).to_have_count(2)
    for k in range(2):
        expect(bars.nth(k)).to_have_attribute("aria-valuenow", "100")
