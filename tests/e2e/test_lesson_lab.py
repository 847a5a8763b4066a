"""Point 6 (the heartbeat lesson), driven from its page (the transport lab: test_lab.py)."""

from __future__ import annotations

import re

from e2etest import SLOW, App
from playwright.sync_api import Page, expect


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


def test_a_split_slower_than_one_child_says_why(app: App) -> None:
    """A range far too small for eight children: their start-up outweighs the work, and the
    page says so with its numbers (start-up, work per child, this browser's cores). Retried a
    few times in case a one-off hiccup made the single child slow instead."""
    page = app.open("/lesson")
    page.fill("#s-max", "1000")
    page.click("#s-one")
    expect(page.locator("#s-body tr[data-n='1'] .answer")).to_have_text("499500", timeout=SLOW)
    cores = page.evaluate("navigator.hardwareConcurrency")
    page.fill("#s-n", "8")
    for attempt in range(1, 4):
        page.click("#s-many")
        row = page.locator("#s-body tr[data-n='8']:not(.why)")
        expect(row).to_have_count(attempt, timeout=SLOW)
        speedup = float(row.first.locator(".speedup").inner_text().split("×")[0])
        why = page.locator("#s-body tr.why[data-n='8']")
        if speedup >= 1:
            expect(why).to_have_count(0)  # faster: nothing to explain
            continue
        # Right under its row, the reasons, with the page's own numbers.
        expect(row.first.locator(".speedup")).to_contain_text("slower, see why below")
        first_row = page.locator("#s-body tr").first
        assert first_row.get_attribute("data-n") == "8"
        reasons = page.locator("#s-body tr").nth(1)
        expect(reasons).to_have_class(re.compile("why"))
        expect(reasons).to_contain_text("Why 8 children were slower than one")
        expect(reasons).to_contain_text(re.compile(r"each child took [\d.]+ m?s from the request"))
        expect(reasons).to_contain_text("the work is too small for the cost of 8 children")
        cores_text = f"8 children for {cores} cores" if cores < 8 else f"{cores} cores (as"
        expect(reasons).to_contain_text(cores_text)
        return
    raise AssertionError("eight children never came out slower than one on a range of 1000")


def test_the_reasons_for_a_slowdown_use_the_numbers_given(harness: Page) -> None:
    result = harness.evaluate(
        """() => ({
          faster: SP.whyNotFaster({n: 2, oneMs: 1200, manyMs: 700}),
          busy: SP.whyNotFaster({n: 2, oneMs: 1200, manyMs: 1350, startMs: 60, cores: 2,
                                 lateMs: 75, otherChildren: 3}),
          small: SP.whyNotFaster({n: 4, oneMs: 90, manyMs: 160, startMs: 70, cores: 2, lateMs: 2}),
          unknown: SP.whyNotFaster({n: 2, oneMs: 100, manyMs: 120}),
        })"""
    )
    assert result["faster"] is None
    busy = result["busy"]
    assert round(busy["speedup"], 2) == 0.89
    assert busy["reasons"] == [
        "Starting a process costs time: each child took 60 ms from the request to its first "
        "message, against at most 600 ms of work each (1.20 s for the whole run with one child, "
        "start-up included, split 2 ways).",
        "2 cores (as this browser counts them) for 2 children: enough, but only if nothing "
        "else needs them.",
        "The machine was busy: the server's heartbeat ran up to 75 ms late during the run "
        "(about 1 ms when the machine is idle), and 3 other children were running on the "
        "server when it started.",
    ]
    small = result["small"]["reasons"]
    assert small[0].endswith(
        "the work is too small for the cost of 4 children; try a bigger range."
    )
    assert small[1].startswith("4 children for 2 cores")
    assert (
        small[2]
        == "Nothing this page can see was busy; other programs on the machine may have been."
    )
    assert len(result["unknown"]["reasons"]) == 2  # no start-up or cores known: said without them


def test_run_labels_on_the_chart_never_overlap(harness: Page) -> None:
    """The labels of the runs shaded on the heartbeat chart ("inline", "child"): two runs close
    together put the second label on the next line, a third with no room left is not drawn."""
    lines = harness.evaluate(
        """() => ({
          apart: CH.labelLines([{x: 0, width: 40}, {x: 100, width: 40}]),
          close: CH.labelLines([{x: 0, width: 40}, {x: 20, width: 40}]),
          crowded: CH.labelLines([{x: 10, width: 40}, {x: 0, width: 40}, {x: 20, width: 40}]),
          after: CH.labelLines([{x: 0, width: 40}, {x: 20, width: 40}, {x: 47, width: 40}],
                               {gap: 6}),
        })"""
    )
    assert lines["apart"] == [0, 0]
    assert lines["close"] == [0, 1]
    assert lines["crowded"] == [1, 0, -1]  # placed by x: the one at 0 first
    assert lines["after"] == [0, 1, 0]  # 47 clears the first (0 + 40 + 6)


def test_the_heartbeat_chart_shows_the_last_seconds_before_any_beat(app: App) -> None:
    """With no points (before the first heartbeat, or none kept) the time axis spans the last
    30 s up to now; uPlot's own default was a span of years in the future."""
    page = app.open("/lesson")
    span = page.evaluate(
        """() => {
          const plot = window.ipcExplorer.chart.plot;
          plot.setData([[], []]);
          return [plot.scales.x.min, plot.scales.x.max, Date.now() / 1000];
        }"""
    )
    lo, hi, now = span
    assert abs(hi - now) < 5 and abs((hi - lo) - 30) < 1, span
