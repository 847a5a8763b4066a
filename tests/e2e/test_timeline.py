"""The timeline as a profiler's (issue 10, part 2), driven as a person would: zoom with the wheel
and with a pinch, pan by dragging, the same with keys, fit a job or everything, read the overview
strip, collapse and pin lanes, select a job, click an arrow for its payload; labels never run
into each other however dense the run, and it stays smooth with 20,000 events on 200 lanes.

Marks and arrows are drawn on a canvas: to click one, a test asks the page where it drew it
(`timeline.pointOf(seq)`) and clicks there with the mouse, as a person who sees it would.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from e2etest import SLOW, App, launch_fork, overlapping_text, write_trace
from playwright.sync_api import Page, expect


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found, f"{selector} is not on screen"
    return found


def view(page: Page) -> tuple[float, float]:
    start, end = page.evaluate("[ipcExplorer.timeline.view.start, ipcExplorer.timeline.view.end]")
    return start, end


def labels(page: Page, job: str):
    return page.locator(f'#timeline .tl-label[data-job="{job}"]:not([hidden])')


def seq_of(page: Page, job: str, predicate: str) -> int:
    """The seq of the first event of `job` for which the JS `predicate(e)` holds."""
    seq = page.evaluate(
        f"(id) => (ipcExplorer.store.jobEvents(id).find({predicate}) ?? {{}}).seq", job
    )
    assert seq is not None, f"no event of {job} matches {predicate}"
    return seq


def point(page: Page, seq: int) -> dict[str, float]:
    """Where the timeline drew the mark of event `seq` (page coordinates), once it has."""
    page.wait_for_function("(s) => ipcExplorer.timeline.pointOf(s) !== null", arg=seq)
    return page.evaluate("(s) => ipcExplorer.timeline.pointOf(s)", seq)


def plot_centre(page: Page) -> tuple[float, float]:
    b = box(page, "#timeline .tl-plot")
    return b["x"] + b["width"] * 0.6, b["y"] + min(b["height"] / 2, 80)


def load_trace(page: Page, path: Path, events: int) -> None:
    """Load an exported run with "Load & replay"; return once the timeline has drawn it."""
    page.set_input_files("#log-load", str(path))
    expect(page.locator("#replay-banner")).to_contain_text(f"{events} events", timeout=SLOW)
    page.wait_for_function(
        "(n) => { const t = ipcExplorer.timeline;"
        " return t.store.events.length === n && t.scene.laneCount === t.store.jobs.size + 1; }",
        arg=events,
    )


# ---------------------------------------------------------------- zoom, pan, fit, overview
def test_zoom_pan_and_fit_with_mouse_and_keys(app: App) -> None:
    page = app.open("/")
    job = launch_fork(page, "progress.py", args="12 30")
    node = page.locator(f'#tree .node[data-job="{job}"]')
    expect(node).to_have_attribute("data-state", "exited", timeout=SLOW)

    # Fit job: the window is the job's life; its first and last marks are labelled on screen.
    page.click("#tl-fit-job")
    expect(labels(page, job).filter(has_text=re.compile(r"^spawn pid"))).to_be_visible()
    expect(labels(page, job).filter(has_text=re.compile(r"(^| · )exit 0( · |$)"))).to_be_visible()
    events = page.evaluate(
        "(id) => ipcExplorer.store.jobEvents(id).map(e => e.t).filter(t => t != null)", job
    )
    start, end = view(page)
    assert start <= min(events) and max(events) <= end
    assert end - start < 3 * (max(events) - min(events)) + 0.05
    strip = box(page, "#timeline .tl-overview-strip")
    window = box(page, "#timeline .tl-ov-window")
    assert window["width"] <= strip["width"] + 1  # the overview marks the part in view

    # Wheel over the plot: zoom in around the pointer; the marked window narrows.
    x, y = plot_centre(page)
    page.mouse.move(x, y)
    for _ in range(3):
        page.mouse.wheel(0, -240)
    page.wait_for_function(
        "(w) => ipcExplorer.timeline.view.end - ipcExplorer.timeline.view.start < w * 0.6",
        arg=end - start,
    )
    zoomed = view(page)
    narrower = box(page, "#timeline .tl-ov-window")
    assert narrower["width"] <= window["width"]

    # Pinch (a trackpad pinch reaches the page as a wheel with Ctrl held): zooms out again.
    page.keyboard.down("Control")
    page.mouse.wheel(0, 480)
    page.keyboard.up("Control")
    page.wait_for_function(
        "(w) => ipcExplorer.timeline.view.end - ipcExplorer.timeline.view.start > w * 1.5",
        arg=zoomed[1] - zoomed[0],
    )

    # Drag right: earlier times come into view (the window moves left).
    before = view(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=3)
    page.mouse.move(x + 200, y, steps=5)
    page.mouse.up()
    after = view(page)
    assert after[0] < before[0] and abs((after[1] - after[0]) - (before[1] - before[0])) < 1e-6
    expect(page.locator("#details pre")).to_have_count(0)  # a drag is not a click

    # Keys, with the plot focused: W zooms in, S out, A pans left, D right (as in Perfetto).
    page.focus("#timeline .tl-plot")
    span = lambda v: v[1] - v[0]  # noqa: E731
    v0 = view(page)
    page.keyboard.press("w")
    page.wait_for_function(
        "(w) => ipcExplorer.timeline.view.end - ipcExplorer.timeline.view.start < w", arg=span(v0)
    )
    v1 = view(page)
    page.keyboard.press("s")
    page.keyboard.press("s")
    page.wait_for_function(
        "(w) => ipcExplorer.timeline.view.end - ipcExplorer.timeline.view.start > w", arg=span(v1)
    )
    v2 = view(page)
    page.keyboard.press("d")
    page.wait_for_function("(s) => ipcExplorer.timeline.view.start > s", arg=v2[0])
    v3 = view(page)
    page.keyboard.press("a")
    page.keyboard.press("a")
    page.wait_for_function("(s) => ipcExplorer.timeline.view.start < s", arg=v3[0])
    # + and - as well, and the buttons for those without a wheel.
    v4 = view(page)
    page.click("#tl-zoom-in")
    page.wait_for_function(
        "(w) => ipcExplorer.timeline.view.end - ipcExplorer.timeline.view.start < w", arg=span(v4)
    )

    # Fit all: the window is the whole run, and the overview's marker covers the strip.
    page.click("#tl-fit-all")
    first, last = page.evaluate("[ipcExplorer.store.firstT, ipcExplorer.store.lastT]")
    start, end = view(page)
    assert start <= first and last <= end
    whole = box(page, "#timeline .tl-ov-window")
    assert whole["width"] >= strip["width"] * 0.9


def test_overview_strip_drags_the_window(app: App) -> None:
    page = app.open("/")
    launch_fork(page, "progress.py", args="6 20")
    page.click("#tl-fit-all")
    x, y = plot_centre(page)
    page.mouse.move(x, y)
    for _ in range(4):
        page.mouse.wheel(0, -240)
    # The marked window narrows to a part of the strip.
    page.wait_for_function(
        "document.querySelector('#timeline .tl-ov-window').getBoundingClientRect().width < 0.6"
        " * document.querySelector('#timeline .tl-overview-strip').getBoundingClientRect().width"
    )
    marker = box(page, "#timeline .tl-ov-window")
    strip = box(page, "#timeline .tl-overview-strip")
    before = view(page)
    # Drag the marked window along the strip: the view follows.
    page.mouse.move(marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2)
    page.mouse.down()
    target = (
        strip["x"] + 5
        if marker["x"] - strip["x"] > strip["width"] / 3
        else strip["x"] + strip["width"] - 5
    )
    page.mouse.move(target, marker["y"] + marker["height"] / 2, steps=6)
    page.mouse.up()
    after = view(page)
    assert abs(after[0] - before[0]) > 0.2 * (before[1] - before[0])
    moved = box(page, "#timeline .tl-ov-window")
    assert abs(moved["x"] - marker["x"]) > 10


# ---------------------------------------------------------------- arrows, payloads, selection
def test_click_an_arrow_to_open_its_payload(app: App) -> None:
    page = app.open("/")
    job = launch_fork(page, "compute.js", "开始计算")
    page.click("#tl-fit-job")
    reply = labels(page, job).filter(has_text="50005000")
    expect(reply).to_be_visible(timeout=SLOW)
    # The arrow's label tells its size and the reply's latency.
    expect(reply).to_contain_text(re.compile(r"\d+ B"))
    expect(reply).to_contain_text(re.compile(r"\d ms|\d s"))
    seq = seq_of(page, job, "e => e.type === 'message' && e.data.direction === 'to_parent'")
    at = point(page, seq)
    page.mouse.move(at["x"], at["y"])
    tip = page.locator("#timeline .tl-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("child → parent")
    page.mouse.click(at["x"], at["y"])
    details = page.locator("#details")
    expect(details).to_contain_text("child → parent")
    expect(details).to_contain_text("50005000")
    expect(details).to_contain_text("after the last message to the child")
    # The request, the other way.
    seq = seq_of(page, job, "e => e.type === 'message' && e.data.direction === 'to_child'")
    at = point(page, seq)
    page.mouse.click(at["x"], at["y"])
    expect(details).to_contain_text("parent → child")
    expect(details.locator("pre")).to_contain_text("开始计算")
    # A label is a way in too.
    reply.click()
    expect(details).to_contain_text("child → parent")
    page.select_option("#kill-signal", "SIGTERM")
    page.click("#kill-form button[type=submit]")


def contrast(page: Page, x: float, y: float) -> float:
    """How far the canvas pixel at (x, y) stands out from the lane beside it (page coords)."""
    return page.evaluate(
        """([x, y]) => {
          const c = document.querySelector('#timeline canvas.tl-canvas');
          const r = c.getBoundingClientRect();
          const k = c.width / r.width;
          const ctx = c.getContext('2d');
          const px = (dx) => ctx.getImageData(
            Math.round((x - r.left + dx) * k), Math.round((y - r.top) * k), 1, 1).data;
          const a = px(0);
          let best = 0;
          for (const dx of [-1, 0, 1]) {
            const p = px(dx);
            const q = px(dx + 9);
            best = Math.max(best, Math.abs(p[0]-q[0]) + Math.abs(p[1]-q[1]) + Math.abs(p[2]-q[2]));
          }
          return best;
        }""",
        [x, y],
    )


def test_select_a_job_highlights_its_lanes_and_arrows(app: App) -> None:
    page = app.open("/")
    first = launch_fork(page, "compute.py", '{"min": 0, "max": 10}')
    second = launch_fork(page, "compute.py", '{"min": 0, "max": 20}')
    for job in (first, second):
        expect(page.locator(f'#tree .node[data-job="{job}"]')).to_have_attribute(
            "data-state", "exited", timeout=SLOW
        )
    page.click("#tl-fit-all")
    # Selecting a job (its lane's name here) selects it everywhere and highlights its lane.
    page.click(f'#timeline .tl-lane[data-job="{first}"] .tl-lane-name')
    expect(page.locator(f'#timeline .tl-lane[data-job="{first}"]')).to_have_attribute(
        "aria-current", "true"
    )
    expect(page.locator(f'#timeline .tl-lane[data-job="{second}"]')).to_have_attribute(
        "aria-current", "false"
    )
    expect(page.locator(f'#tree .node[data-job="{first}"]')).to_have_attribute(
        "aria-selected", "true"
    )
    # Its arrows stand out; the other job's are dimmed. Read the pixels a person sees, on the
    # part of each arrow inside its own lane (lanes come in start order: `first` is above).
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    seen = {}
    for job in (first, second):
        seq = seq_of(page, job, "e => e.type === 'message' && e.data.direction === 'to_parent'")
        at = page.evaluate("(s) => ipcExplorer.timeline.pointOf(s, 'lane')", seq)
        assert at, f"the arrow of {job} is not drawn"
        seen[job] = contrast(page, at["x"], at["y"])
    assert seen[first] > 1.5 * seen[second], seen


def test_lanes_are_grouped_collapsed_and_pinned(app: App) -> None:
    page = app.open("/")
    job = launch_fork(page, "grandchildren.py", args="2 30")
    lane = page.locator(f'#timeline .tl-lane[data-job="{job}"]')
    expect(lane).to_be_visible(timeout=SLOW)
    grand = page.locator(f'#timeline .tl-lane[data-parent="{job}"]')
    expect(grand).to_have_count(2, timeout=SLOW)
    expect(grand.first).to_contain_text("grandchild")
    assert lane.get_attribute("aria-level") == "2"
    assert grand.first.get_attribute("aria-level") == "3"
    assert grand.first.bounding_box()["y"] > lane.bounding_box()["y"]  # type: ignore[index]
    # Collapse: the grandchildren's lanes fold into their parent's.
    toggle = lane.locator(".tl-collapse")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(grand).to_have_count(0)
    toggle.click()
    expect(grand).to_have_count(2)
    # Pin: the lane stays in view, under the server's, however the lanes are scrolled.
    lane.locator(".tl-pin").click()
    expect(lane.locator(".tl-pin")).to_have_attribute("aria-pressed", "true")
    page.eval_on_selector("#timeline .tl-scroll", "el => el.scrollTop = 0")
    top = box(page, f'#timeline .tl-lane[data-job="{job}"]')["y"]
    page.eval_on_selector("#timeline .tl-scroll", "el => el.scrollTop = el.scrollHeight")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert abs(box(page, f'#timeline .tl-lane[data-job="{job}"]')["y"] - top) < 2
    server = box(page, '#timeline .tl-lane[data-lane="server"]')
    assert server["y"] < top
    lane.locator(".tl-pin").click()
    expect(lane.locator(".tl-pin")).to_have_attribute("aria-pressed", "false")
    # The same from the keyboard: on the timeline, → goes to the selected job's first mark,
    # C folds its lane, P pins it.
    page.focus("#timeline .tl-plot")
    page.keyboard.press("ArrowRight")
    number = page.locator(f'#tree .node[data-job="{job}"]').get_attribute("data-number")
    expect(page.locator("#timeline .tl-tip")).to_contain_text(f"#{number} · grandchildren.py")
    page.keyboard.press("c")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("c")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("p")
    expect(lane.locator(".tl-pin")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("p")
    expect(lane.locator(".tl-pin")).to_have_attribute("aria-pressed", "false")
    page.select_option("#kill-signal", "SIGTERM")
    page.click("#kill-form button[type=submit]")
    expect(page.locator(f'#tree .node[data-job="{job}"]')).to_have_attribute(
        "data-state", "signaled", timeout=SLOW
    )


# ---------------------------------------------------------------- density: labels, counts
def test_dense_run_labels_never_overlap_and_marks_count_true(app: App, tmp_path: Path) -> None:
    page = app.open("/")
    trace = write_trace(tmp_path / "dense.ndjson", jobs=30, events=3000)
    load_trace(page, trace, 3000)
    page.click("#tl-fit-all")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    boxes, overlaps = overlapping_text(page, "#timeline")
    assert boxes > 10
    assert not overlaps, "\n".join(overlaps)
    # Dense marks are drawn as one, with their count on screen.
    counts = page.locator("#timeline .tl-label.tl-count:not([hidden])")
    expect(counts.first).to_be_visible()
    assert re.fullmatch(r"×\d+", counts.first.inner_text())
    # Every event in view is accounted for: the marks drawn on a lane (one each, or one per
    # group with its count) add up to the lane's events in the window.
    truth = page.evaluate(
        """() => {
          const tl = ipcExplorer.timeline, store = tl.store;
          const {start, end} = tl.view;
          const drawn = new Map();
          for (const m of tl.scene.marks) drawn.set(m.lane, (drawn.get(m.lane) ?? 0) + m.count);
          const want = new Map();
          for (const e of store.events) {
            if (e.t < start || e.t > end || !tl.scene.lanesInView.includes(e.job)) continue;
            const drawn = ['spawn', 'exit', 'close', 'error', 'disconnect', 'message', 'stdout',
                           'stderr'];
            if (!drawn.includes(e.type)) continue;
            want.set(e.job, (want.get(e.job) ?? 0) + 1);
          }
          return {drawn: Object.fromEntries(drawn), want: Object.fromEntries(want)};
        }"""
    )
    assert truth["want"], "no lane in view"
    assert truth["drawn"] == truth["want"]
    # A mark whose label did not fit shows it on hover (zoomed in until single marks, too close
    # for all their labels, are drawn).
    x, y = plot_centre(page)
    # One the pointer can reach: not in a scrolling lane's part under the pinned lanes.
    find_hidden = (
        "(tl => (tl.scene.marks.find(m => m.count === 1 && !m.labelled"
        " && m.type === 'message' && (m.fixed || m.by0 >= tl.scrollTopY) && m.by1 <= tl.viewH)"
        " ?? {}).seq ?? null)(ipcExplorer.timeline)"
    )
    hidden = None
    for _ in range(12):
        hidden = page.evaluate(find_hidden)
        if hidden is not None:
            break
        page.mouse.move(x, y)
        page.mouse.wheel(0, -200)
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert hidden is not None, "no single message without its label: not dense enough"
    payload = page.evaluate(
        "(s) => JSON.stringify("
        "ipcExplorer.timeline.store.events.find(e => e.seq === s).data.message)",
        hidden,
    )
    at = point(page, hidden)
    page.mouse.move(at["x"], at["y"])
    tip = page.locator("#timeline .tl-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(payload)
    # And on focus, for the keyboard: the plot takes focus, arrows walk the marks.
    page.focus("#timeline .tl-plot")
    page.keyboard.press("ArrowRight")
    expect(tip).to_be_visible()
    text = tip.inner_text()
    page.keyboard.press("ArrowRight")
    expect(tip).not_to_have_text(text)
    page.keyboard.press("Enter")
    expect(page.locator("#details pre")).to_be_visible()
    # Zoomed far in, the marks come apart and the labels with them (still no overlap).
    page.click("#tl-fit-all")
    x, y = plot_centre(page)
    page.mouse.move(x, y)
    while view(page)[1] - view(page)[0] > 3:
        page.mouse.wheel(0, -300)
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert not overlapping_text(page, "#timeline")[1]
    expect(page.locator("#timeline .tl-label:not(.tl-count):not([hidden])").first).to_be_visible()


def test_lane_names_and_exit_labels_stay_in_their_lanes(app: App, tmp_path: Path) -> None:
    """The issue's picture: "exit SIGTERM" / "close SIGTERM" ran into the next lane."""
    page = app.open("/")
    trace = tmp_path / "exits.ndjson"
    events: list[dict[str, Any]] = []
    for i in range(12):
        job, t = f"j{i + 1}", 1_764_000_000.0 + i * 0.001
        events += [
            {
                "job": job,
                "pid": 100 + i,
                "type": "spawn",
                "t": t,
                "data": {"program": "a-long-program-name.py"},
            },
            {
                "job": job,
                "pid": 100 + i,
                "type": "exit",
                "t": t + 0.5,
                "data": {"code": None, "signal": "SIGTERM"},
            },
            {
                "job": job,
                "pid": 100 + i,
                "type": "close",
                "t": t + 0.5004,
                "data": {"code": None, "signal": "SIGTERM"},
            },
        ]
    events.sort(key=lambda e: e["t"])
    trace.write_text("".join(json.dumps({**e, "seq": n}) + "\n" for n, e in enumerate(events, 1)))
    load_trace(page, trace, len(events))
    page.click("#tl-fit-all")
    expect(page.locator("#timeline .tl-label", has_text="exit SIGTERM").first).to_be_visible()
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    for width in (1280, 420):
        page.set_viewport_size({"width": width, "height": 800})
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        boxes, overlaps = overlapping_text(page, "#timeline")
        assert boxes > 12 and not overlaps, "\n".join(overlaps)
        # Each label lies inside its own lane's band.
        outside = page.evaluate(
            """() => [...document.querySelectorAll('#timeline .tl-label')]
              .filter(l => l.checkVisibility()).filter(l => {
                const sel = `#timeline .tl-lane[data-lane="${l.dataset.job}"]`;
                const head = document.querySelector(sel);
                if (!head) return true;
                const lane = head.getBoundingClientRect(), r = l.getBoundingClientRect();
                return r.top < lane.top - 0.5 || r.bottom > lane.bottom + 0.5;
              }).map(l => l.textContent)"""
        )
        assert outside == []


# ---------------------------------------------------------------- 20,000 events, 200 lanes
_START_MEASURING = """() => {
  const m = window.__frames = {deltas: [], longTasks: [], longFrames: [], running: true};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) m.longTasks.push(Math.round(e.duration));
  }).observe({type: 'longtask'});
  // Where a long frame's time went (script, style and layout, paint), for the report.
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const end = e.startTime + e.duration;
      m.longFrames.push({ms: Math.round(e.duration),
                         render: Math.round(e.renderStart ? end - e.renderStart : 0),
                         styleLayout: Math.round(
                           e.styleAndLayoutStart ? end - e.styleAndLayoutStart : 0),
                         scripts: e.scripts.map(x => `${x.invoker} ${Math.round(x.duration)}ms`)});
    }
  }).observe({type: 'long-animation-frame'});
  let last = performance.now();
  const tick = (now) => {
    m.deltas.push(now - last);
    last = now;
    if (m.running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  ipcExplorer.timeline.stats.drawMs.length = 0;
}"""

_STOP_MEASURING = """() => {
  const m = window.__frames;
  m.running = false;
  const d = m.deltas.slice(1).sort((a, b) => a - b);
  const draws = ipcExplorer.timeline.stats.drawMs.slice().sort((a, b) => a - b);
  const at = (a, q) => +a[Math.floor(a.length * q)].toFixed(1);
  return {frames: d.length, max: +d.at(-1).toFixed(1), p95: at(d, 0.95),
          longTasks: m.longTasks, longFrames: m.longFrames, draws: draws.length,
          drawMax: +draws.at(-1).toFixed(1), drawP50: at(draws, 0.5)};
}"""


def zoom_and_pan_like_a_person(page: Page) -> dict[str, Any]:
    """Wheel in and out, drag both ways, the keys, scroll the lanes: the frames it took."""
    page.evaluate(_START_MEASURING)
    x, y = plot_centre(page)
    page.mouse.move(x, y)
    for _ in range(12):
        page.mouse.wheel(0, -200)
    page.mouse.down()
    page.mouse.move(x - 300, y, steps=15)
    page.mouse.up()
    for _ in range(8):
        page.mouse.wheel(0, 300)
    page.focus("#timeline .tl-plot")
    for key in ["w"] * 4 + ["d"] * 4 + ["s"] * 4 + ["a"] * 4:
        page.keyboard.press(key)
    page.eval_on_selector("#timeline .tl-scroll", "el => el.scrollTop = el.scrollHeight / 2")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 250, y, steps=15)
    page.mouse.up()
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return page.evaluate(_STOP_MEASURING)


def main_thread_cpu(trace: bytes) -> list[float]:
    """The CPU time (ms) of each task the page's main thread ran, from a Chrome trace: what
    the page itself worked, whatever else the machine was doing meanwhile."""
    data = json.loads(trace)
    events = data["traceEvents"] if isinstance(data, dict) else data
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e["args"].get("name") == "CrRendererMain"
    }
    return [
        e["tdur"] / 1000
        for e in events
        if e.get("ph") == "X"
        and e.get("name") == "ThreadControllerImpl::RunTask"
        and (e.get("pid"), e.get("tid")) in main
        and "tdur" in e
    ]


def test_smooth_with_20000_events_on_200_lanes(app: App, tmp_path: Path, browser: Any) -> None:
    """No frame over 50 ms while a person zooms and pans 20,000 events on 200 lanes, measured
    with the Performance API: requestAnimationFrame deltas, long tasks, long animation frames.

    On two cores shared with other test runs a frame can be late on the wall clock because
    the page was waiting for a core, not working. So Chrome's trace of the same gestures is
    read too: every task of the page's main thread must have used under 50 ms of CPU (always
    asserted), and the wall-clock figures must be clean in one of two tries unless the
    machine is oversubscribed (its load average above its cores), when they are printed."""
    page = app.open("/")
    trace = write_trace(tmp_path / "big.ndjson", jobs=200, events=20_000)
    load_trace(page, trace, 20_000)
    # The replay's lanes: the server's and 200 (the page draws the file at its next frame).
    page.wait_for_function("ipcExplorer.timeline.scene.laneCount === 201")
    page.click("#tl-fit-all")
    # Let the page settle after loading the file (the process panel and the event log draw
    # the 200 jobs once), so what is measured is the zooming and panning.
    expect(page.locator("#tree .node[data-job]")).to_have_count(200, timeout=SLOW)
    clean = False
    for _ in range(2):
        page.evaluate("new Promise(r => requestIdleCallback(r, {timeout: 5000}))")
        browser.start_tracing(page=page, categories=["toplevel"])
        frames = zoom_and_pan_like_a_person(page)
        cpu = main_thread_cpu(browser.stop_tracing())
        frames["cpuTaskMax"] = round(max(cpu), 1)
        frames["loadPerCore"] = round(os.getloadavg()[0] / (os.cpu_count() or 1), 1)
        print("\nzooming and panning 20,000 events on 200 lanes:", frames)
        assert frames["draws"] >= 20, frames  # it really redrew, frame after frame
        assert frames["cpuTaskMax"] < 50, frames  # the page's own work, every frame
        # Frames come every 16.7 ms: a 50.0 ms delta is two missed frames, not one over 50 ms.
        if frames["max"] <= 50.1 and not frames["longTasks"]:
            clean = True
            break
    assert clean or frames["loadPerCore"] > 1.0, frames
