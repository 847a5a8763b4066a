"""The transport lab page, driven as a person would: set the sizes, run, watch the numbers
fill in while they are measured, read them; cancel a long run."""

from __future__ import annotations

from e2etest import App
from playwright.sync_api import expect

SUBJECTS = ("floor", "pipe", "socketpair", "unix", "tcp")


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_lab_measures_transports_in_microseconds_live(app: App) -> None:
    page = app.open("/lab")
    expect(page.locator("#lab-subjects input")).not_to_have_count(0)
    page.fill("#lab-rtt", "300")
    page.fill("#lab-msgs", "2000")
    page.fill("#lab-big", "5")
    page.check("#lab-browser")
    # Watch the table as it changes: the numbers must appear while later subjects still wait.
    page.evaluate(
        """() => {
        window.seen = [];
        new MutationObserver(() => {
          const cell = (k, c) => document.querySelector(`#lab-body tr[data-subject=${k}] ${c}`);
          const p50 = cell("socketpair", ".p50");
          const tcp = document.querySelector("#lab-body tr[data-subject=tcp]");
          if (p50 && tcp) window.seen.push([p50.textContent, tcp.dataset.state]);
        }).observe(document.querySelector("#lab-body"), {childList: true, subtree: true});
    }"""
    )
    page.click("#lab-run")
    expect(page.locator("#lab-cancel")).to_be_enabled()
    expect(page.locator("#lab-msg")).to_contain_text("Measuring")
    browser_row = page.locator("#lab-body tr[data-subject=browser]")
    expect(browser_row).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#lab-msg")).to_contain_text("done")
    expect(page.locator("#lab-cancel")).to_be_disabled()

    p50s = {}
    for key in SUBJECTS:
        row = page.locator(f"#lab-body tr[data-subject={key}]")
        expect(row).to_have_attribute("data-state", "done")
        p50 = number(row.locator(".p50").inner_text())
        p99 = number(row.locator(".p99").inner_text())
        assert 0 < p50 <= p99, (key, p50, p99)
        assert number(row.locator(".rate").inner_text()) > 0
        assert number(row.locator(".mbs").inner_text()) > 0
        expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "100")
        p50s[key] = p50
    # The transports' own round trip is microseconds on this machine, far below a millisecond.
    assert p50s["socketpair"] < 1000, p50s
    expect(browser_row.locator("th")).to_contain_text("through your browser")
    browser_p50 = number(browser_row.locator(".p50").inner_text())
    assert browser_p50 > p50s["socketpair"], (browser_p50, p50s)
    assert browser_row.locator(".rate").inner_text() == "–"

    seen = page.evaluate("window.seen")
    assert any(p50 != "–" and tcp == "waiting" for p50, tcp in seen), seen[:20]
    for chart in ("#lat-chart", "#rate-chart", "#mb-chart"):
        expect(page.locator(f"{chart} canvas")).to_be_visible()


def test_a_long_run_can_be_cancelled_and_a_second_is_refused(app: App) -> None:
    page = app.open("/lab")
    expect(page.locator("#lab-subjects input")).not_to_have_count(0)
    for box in page.locator("#lab-subjects input").all():
        if box.get_attribute("value") != "socketpair":
            box.uncheck()
    page.fill("#lab-rtt", "20000")
    page.fill("#lab-msgs", "200000")
    page.fill("#lab-big", "100")
    page.click("#lab-run")
    row = page.locator("#lab-body tr[data-subject=socketpair]")
    expect(row.locator(".state-text")).to_contain_text("round trips", timeout=60_000)
    expect(page.locator("#lab-body tr")).to_have_count(1)

    refused = page.request.post(
        f"{app.base}/api/lab/runs",
        headers={"Authorization": f"Bearer {app.live.token}"},
        data={},
    )
    assert refused.status == 409 and "one run at a time" in refused.json()["error"]

    page.click("#lab-cancel")
    expect(row).to_have_attribute("data-state", "cancelled", timeout=30_000)
    expect(page.locator("#lab-msg")).to_contain_text("cancelled by the user")
    expect(page.locator("#lab-run")).to_be_enabled()
