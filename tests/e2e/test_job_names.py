"""A job is named by its number (#3) wherever a person reads it, on every page: the tree, the
timeline's lanes and tooltips, the details box, the console's title, the talk panel's replies,
the event log and its filter, the Inspect panel. Its id (a UUID) stays in data attributes and
URLs only."""

from __future__ import annotations

import re

from e2etest import SLOW, App, launch_fork
from playwright.sync_api import Page, expect

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

#: What a person can read on the page: its text, and the titles, labels and placeholders that
#: a pointer or a screen reader brings up, and the options of its lists. Not the raw event in
#: the details box (the event exactly as the API and an export carry it, id included).
_READABLE_JS = """() => {
  const raw = document.querySelector("#details pre")?.innerText ?? "";
  const out = [document.body.innerText.replace(raw, "")];
  for (const el of document.querySelectorAll("[title], [aria-label], [placeholder]")) {
    for (const a of ["title", "aria-label", "placeholder"]) out.push(el.getAttribute(a) ?? "");
  }
  for (const o of document.querySelectorAll("option")) out.push(o.textContent);
  return out.join("\\n");
}"""


def ids_shown(page: Page) -> list[str]:
    """The job ids (UUIDs) a person can read on the page."""
    return sorted(set(UUID.findall(page.evaluate(_READABLE_JS))))


def test_the_explorer_names_a_job_by_its_number_everywhere(app: App) -> None:
    page = app.open("/")
    job = launch_fork(page, "echo.py", '{"n": 1}')
    node = page.locator(f'#tree .node[data-job="{job}"]')
    name = f"#{node.get_attribute('data-number')}"
    title = f"{name} · echo.py"

    # The lane (whole, not cut: "39d626e2-f205-4…" before), the console's title.
    lane = page.locator(f'#timeline .tl-lane[data-job="{job}"]')
    expect(lane.locator(".tl-lane-name")).to_have_text(title, timeout=SLOW)
    expect(page.locator("#job-title")).to_contain_text(title)

    # The talk panel's reply, then the reply's mark: its tooltip and its details.
    page.fill("#send-input", '{"n": 2}')
    page.click("#send-form button[type=submit]")
    expect(page.locator("#talk-msg")).to_have_text(f"Sent to {name}.")
    page.wait_for_function(
        "(id) => ipcExplorer.store.jobEvents(id).filter(e => e.type === 'message'"
        " && e.data.direction === 'to_parent').length >= 2",
        arg=job,
        timeout=SLOW,
    )
    # The keyboard's walk shows each mark's tooltip (the request and its reply may be drawn
    # as one group at this zoom), and Enter its details.
    page.focus("#timeline .tl-plot")
    page.keyboard.press("End")
    tip = page.locator("#timeline .tl-tip")
    expect(tip).to_contain_text(title)
    assert not UUID.search(tip.inner_text())
    page.keyboard.press("Enter")
    expect(page.locator("#details")).to_contain_text(f"· {title} ·")

    # The event log: its job column and its job filter.
    page.locator("#log-table").scroll_into_view_if_needed()
    page.select_option("#log-job", job)
    expect(page.locator("#log-job option:checked")).to_have_text(title)
    cells = page.locator("#log-table tbody td.job")
    expect(cells.first).to_have_text(name)
    assert set(cells.all_inner_texts()) == {name}

    # Killed: the talk panel and the Inspect panel say which job, by name.
    page.select_option("#kill-signal", "SIGKILL")
    page.click("#kill-form button[type=submit]")
    expect(page.locator("#talk-msg")).to_have_text(f"SIGKILL sent to {name}.")
    expect(page.locator("#fds-msg")).to_contain_text(f"{name} has ended", timeout=SLOW)
    page.click("#send-form button[type=submit]")  # refused: its channel is closed
    expect(page.locator("#talk-msg")).to_have_class(re.compile("error"))
    expect(page.locator("#talk-msg")).to_contain_text(name)

    assert ids_shown(page) == []


def test_the_examples_timeline_names_jobs_an_endpoint_started(app: App) -> None:
    """/getSum forks its child in the server: the page learns of the job from the feed, by id
    only, and looks its number up."""
    page = app.open("/examples")
    page.click('#ex-getsum button[data-endpoint="/getSum"]')
    expect(page.locator("#ex-getsum .endpoint-result")).to_contain_text("200", timeout=SLOW)
    # Its number, and as much of the rest as the lane has room for (all of it in its title).
    lane = page.locator("#ex-timeline .tl-lane.tl-job .tl-lane-name").first
    expect(lane).to_have_text(re.compile(r"^#\d+( · compute.*)?$"), timeout=SLOW)
    expect(lane).to_have_attribute("title", re.compile(r"^#\d+ · compute"))
    assert ids_shown(page) == []
