"""Helpers shared by the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

#: Milliseconds to wait for something a child does: a Node child on a busy 2-core box can
#: take a while to start.
SLOW = 30_000


class App:
    """What a test needs to drive the app: open pages, call the API as the user's browser."""

    def __init__(self, live: Any, page: Page) -> None:
        self.live = live
        self.page = page
        self.base = live.base_url.rstrip("/")

    def open(self, path: str = "/") -> Page:
        """Open a page the way a user does the first time: the URL with the token in it."""
        sep = "&" if "?" in path else "?"
        self.page.goto(f"{self.base}{path}{sep}token={self.live.token}")
        self.page.wait_for_selector("#feed-status[data-state=live]", timeout=15000)
        return self.page

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """An API call with the token (as a script of the user's would make it)."""
        req = self.page.request
        headers = {"Authorization": f"Bearer {self.live.token}"}
        url = f"{self.base}{path}"
        res = req.fetch(url, method=method, headers=headers, data=body)
        assert res.ok, f"{method} {path}: {res.status} {res.text()}"
        return res.json() if res.text() else None

    def launch(self, spec: dict) -> dict:
        job = self.api("POST", "/api/jobs", spec)
        return job.get("job", job)


def launch_fork(
    page: Page, program: str, message: str = "", transport: str = "auto", args: str = ""
) -> str:
    """Fork `program` from the launch panel as a person does; the id of the job it launched
    (the page selects it once it is in the tree)."""
    page.select_option("#l-kind", "fork")
    page.select_option("#l-program", program)
    page.select_option("#l-transport", transport)
    page.fill("#l-message", message)
    page.fill("#l-args", args)
    page.fill("#l-count", "1")
    msg = page.locator("#launch-msg")
    before = msg.inner_text()
    selected = page.locator('#tree .node[aria-selected="true"]')
    earlier = selected.get_attribute("data-job") if selected.count() else None
    page.click("#l-submit")
    expect(msg).not_to_have_text(before, timeout=SLOW)  # not an earlier launch's line
    expect(msg).to_contain_text("Launched", timeout=SLOW)
    node = page.locator(f'#tree .node[aria-selected="true"]:not([data-job="{earlier}"])')
    expect(node).to_have_count(1, timeout=SLOW)
    job_id = node.get_attribute("data-job")
    assert job_id
    return job_id


def expect_answer_on_timeline(page: Page, answer: str, job: str | None = None) -> None:
    """The child's message carrying `answer` is on the page's timeline (ipcExplorer.timeline,
    fitted by the caller): its arrow, under the pointer, shows it in the tooltip. Not its label,
    which may be hidden by design: an answer a few pixels before "exit SIGTERM · close" has no
    room for one, and a label that does not fit is shown on hover."""
    # Where the arrow is once the view is drawn (the next frames), not where it was.
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    seq = page.evaluate(
        """([answer, job]) => (ipcExplorer.timeline.store.events.find((e) =>
             e.type === "message" && e.data.direction === "to_parent" && (!job || e.job === job)
             && JSON.stringify(e.data.message).includes(answer)) ?? {}).seq""",
        [answer, job],
    )
    assert seq is not None, f"no message with {answer!r} on the timeline"
    page.wait_for_function("(s) => ipcExplorer.timeline.pointOf(s) !== null", arg=seq)
    at = page.evaluate("(s) => ipcExplorer.timeline.pointOf(s)", seq)
    page.mouse.move(0, 0)  # from elsewhere: a pointer already there would not move
    page.mouse.move(at["x"], at["y"])
    tip = page.locator(".tl-tip:not([hidden])")
    expect(tip).to_contain_text("child → parent")
    assert answer in tip.inner_text().splitlines()[-1], tip.inner_text()


# ---------------------------------------------------------------- text that overlaps other text
#: Every visible piece of text on the page (text nodes, each line of each one, cut to what its
#: scrolling / clipping ancestors let show), and the pairs of them whose boxes overlap by more
#: than a pixel both ways. What a reviewer sees in a screenshot, measured.
_OVERLAPS_JS = """
(scope) => {
  const root = scope ? document.querySelector(scope) : document.body;
  if (!root) return {boxes: 0, pairs: []};
  const clips = new Map();
  // The part of the page an element lets its content show in: the intersection of its own
  // box and every ancestor's that clips (overflow other than visible).
  const clipOf = (el) => {
    if (!el || el === document.documentElement) return null;
    if (clips.has(el)) return clips.get(el);
    let clip = clipOf(el.parentElement);
    const st = getComputedStyle(el);
    if (st.overflowX !== "visible" || st.overflowY !== "visible") {
      const r = el.getBoundingClientRect();
      const mine = {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
      clip = clip ? {x0: Math.max(clip.x0, mine.x0), y0: Math.max(clip.y0, mine.y0),
                     x1: Math.min(clip.x1, mine.x1), y1: Math.min(clip.y1, mine.y1)} : mine;
    }
    clips.set(el, clip);
    return clip;
  };
  const skip = "script,style,template,option,datalist,select,textarea,noscript,title";
  const boxes = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let node = 0;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    node++;
    const text = n.nodeValue;
    const start = text.search(/\\S/);
    if (start < 0) continue;
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const range = document.createRange();
    range.setStart(n, start);
    range.setEnd(n, text.trimEnd().length);
    const clip = clipOf(el);
    for (const r of range.getClientRects()) {
      let b = {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
      if (clip) b = {x0: Math.max(b.x0, clip.x0), y0: Math.max(b.y0, clip.y0),
                     x1: Math.min(b.x1, clip.x1), y1: Math.min(b.y1, clip.y1)};
      if (b.x1 - b.x0 < 2 || b.y1 - b.y0 < 2) continue;
      boxes.push({...b, node, text: text.trim().slice(0, 50), where: el.className || el.tagName});
    }
  }
  boxes.sort((a, b) => a.y0 - b.y0);
  const pairs = [];
  const tol = 1;
  for (let i = 0; i < boxes.length; i++) {
    const a = boxes[i];
    for (let j = i + 1; j < boxes.length && boxes[j].y0 < a.y1 - tol; j++) {
      const b = boxes[j];
      const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
      const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
      // (one text node's own line boxes never overlap; a clipped one may repeat a box)
      if (w > tol && h > tol && a.node !== b.node) pairs.push([a, b]);
    }
  }
  return {boxes: boxes.length, pairs: pairs.slice(0, 20)};
}
"""


def overlapping_text(page: Page, scope: str | None = None) -> tuple[int, list[str]]:
    """(how many text boxes are visible, the pairs that overlap, as readable lines)."""
    found = page.evaluate(_OVERLAPS_JS, scope)
    lines = [
        f"{a['text']!r} ({a['where']}) overlaps {b['text']!r} ({b['where']}) at "
        f"{round(b['x0'])},{round(b['y0'])}"
        for a, b in found["pairs"]
    ]
    return found["boxes"], lines


#: An element as a reader of a failure finds it: its tag, id and classes ("span#x.name").
_NAME_JS = """
  const name = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const classes = typeof el.className === "string" ? el.className.trim().split(/\\s+/) : [];
    return [el.tagName.toLowerCase() + id, ...classes.filter(Boolean)].join(".");
  };
"""


# ---------------------------------------------------------------- text cut off or sticking out
#: What the overlap check cannot see: text cut off at the side of a box that clips it (an
#: ellipsis, a lane's subtitle), a placeholder or a chosen option wider than its field, and an
#: element that sticks out sideways past the box that holds it ("hide finished" past the tree's
#: tools). A box that scrolls sideways (a table, a code block) shows the rest by scrolling, so
#: what it holds is not cut; an element placed on its own (absolute, fixed) is the page's to
#: place and is left alone, as are visually hidden labels (1 px boxes for screen readers).
_CUT_JS = (
    """
(scope) => {
  const root = scope ? document.querySelector(scope) : document.body;
  if (!root) return [];
  const tol = 1;
  const found = [];
"""
    + _NAME_JS
    + """
  const visible = (el) => el.checkVisibility({opacityProperty: true, visibilityProperty: true});
  const scrollsX = (st) => st.overflowX === "auto" || st.overflowX === "scroll";
  const clipsX = (st) => st.overflowX === "hidden" || st.overflowX === "clip";
  const inner = (el) => {  // the padding box: where content may show
    const r = el.getBoundingClientRect();
    return {x0: r.left + el.clientLeft, x1: r.left + el.clientLeft + el.clientWidth};
  };
  // Measured in the page, in the field's font (a canvas may resolve "system-ui" to another).
  const ruler = document.createElement("span");
  ruler.style.cssText = "position:absolute; visibility:hidden; white-space:pre; left:0; top:0";
  document.body.append(ruler);
  const textWidth = (text, st) => {
    for (const p of ["fontStyle", "fontWeight", "fontSize", "fontFamily", "letterSpacing"]) {
      ruler.style[p] = st[p];
    }
    ruler.textContent = text;
    return ruler.getBoundingClientRect().width;
  };
  // 1. Text cut at the side by an ancestor that clips (up to the first one that scrolls).
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.nodeValue;
    const start = text.search(/\\S/);
    if (start < 0) continue;
    const el = n.parentElement;
    if (!el || el.closest("script,style,template,option,select,textarea,noscript,title")) continue;
    if (!visible(el)) continue;
    const range = document.createRange();
    range.setStart(n, start);
    range.setEnd(n, text.trimEnd().length);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0.5);
    if (!rects.length) continue;
    const x0 = Math.min(...rects.map((r) => r.left));
    const x1 = Math.max(...rects.map((r) => r.right));
    for (let a = el; a && a !== document.documentElement; a = a.parentElement) {
      const st = getComputedStyle(a);
      if (scrollsX(st)) break;
      if (!clipsX(st)) continue;
      const box = inner(a);
      if (box.x1 - box.x0 <= 2) break;  // a visually hidden label
      if (x0 < box.x0 - tol || x1 > box.x1 + tol) {
        found.push({what: "cut", text: text.trim().slice(0, 60), where: name(el), by: name(a),
                    px: Math.round(Math.max(box.x0 - x0, x1 - box.x1))});
        break;
      }
    }
  }
  // 2. Placeholders and chosen options wider than their field.
  for (const el of root.querySelectorAll("input[placeholder], select")) {
    if (!visible(el)) continue;
    const st = getComputedStyle(el);
    let text;
    let room = el.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
    // Chromium's own parts, measured from its rendering: a select's text starts 4 px inside
    // its padding and stops 15 px short of it, for the arrow; an empty search field keeps
    // 15 px for its (invisible) clear button.
    if (el.tagName === "SELECT") {
      if (el.multiple || el.size > 1) continue;
      text = el.selectedOptions[0]?.text ?? "";
      room -= 19;
    } else {
      if (el.value) continue;
      text = el.placeholder;
      if (el.type === "search") room -= 15;
    }
    const need = textWidth(text, st);
    if (text && need > room + tol) {
      const what = el.tagName === "SELECT" ? "option cut" : "placeholder cut";
      found.push({what, text: text.slice(0, 60), where: name(el), by: name(el),
                  px: Math.round(need - room)});
    }
  }
  ruler.remove();
  // 3. An element sticking out sideways past its parent (unless the parent scrolls sideways).
  for (const el of root.querySelectorAll("*")) {
    const parent = el.parentElement;
    if (!parent || !visible(el) || el.closest("svg")) continue;
    const st = getComputedStyle(el);
    if (st.position === "absolute" || st.position === "fixed") continue;
    // Measured against a parent with a box of its own (not an inline run of text).
    const pst = getComputedStyle(parent);
    if (scrollsX(pst) || pst.display === "contents" || pst.display === "inline") continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    const p = parent.getBoundingClientRect();
    const over = Math.max(p.left - r.left, r.right - p.right);
    if (over > tol) {
      const text = (el.innerText ?? "").trim().slice(0, 60);
      found.push({what: "sticks out", text, where: name(el), by: name(parent),
                  px: Math.round(over)});
    }
  }
  return found.slice(0, 30);
}
"""
)


def cut_text(page: Page, scope: str | None = None) -> list[str]:
    """Text that does not fit sideways, as readable lines: cut off by a box that clips it, a
    placeholder or a chosen option wider than its field, an element past its parent's side."""
    return [
        f"{f['what']}: {f['text']!r} ({f['where']}) by {f['px']} px at {f['by']}"
        for f in page.evaluate(_CUT_JS, scope)
    ]


# ---------------------------------------------------------------- boxes that scroll sideways
_SIDEWAYS_JS = (
    """
() => {
  const found = [];
"""
    + _NAME_JS
    + """
  for (const el of document.querySelectorAll("body *")) {
    const st = getComputedStyle(el);
    if (st.overflowX !== "auto" && st.overflowX !== "scroll") continue;
    if (!el.clientWidth || el.scrollWidth <= el.clientWidth + 1) continue;
    found.push(`${name(el)} holds ${el.scrollWidth} px in ${el.clientWidth} px`);
  }
  return found;
}
"""
)


def scrolls_sideways(page: Page) -> list[str]:
    """The boxes that hide part of what they hold past their side until scrolled sideways (a
    table's last column, a code line's end). Fine on a phone; on a desktop window, overflow."""
    return page.evaluate(_SIDEWAYS_JS)


# ---------------------------------------------------------------- a synthetic run, for replay
def synthetic_trace(jobs: int, events: int, *, seconds: float = 120.0) -> list[dict[str, Any]]:
    """`events` events of `jobs` forked children in the feed's one shape, as an exported file
    holds them: each child spawns, trades request / reply messages with the server, prints,
    exits (some with a code or a signal) and closes. Deterministic, so a failure reproduces."""
    t0 = 1_764_000_000.0
    per_job = max(4, events // jobs)
    out: list[dict[str, Any]] = []
    for i in range(jobs):
        job, pid = f"j{i + 1}", 20_000 + i
        start = t0 + seconds * 0.6 * i / jobs
        life = seconds * 0.4 * (0.3 + 0.7 * ((i * 37) % 11) / 10)
        n = per_job + (events - per_job * jobs if i == jobs - 1 else 0)
        step = life / n

        def ev(k: int, type_: str, data: dict[str, Any], job=job, pid=pid, start=start, step=step):
            out.append({"job": job, "pid": pid, "type": type_, "t": start + k * step, "data": data})

        ev(0, "spawn", {"kind": "fork", "program": "synthetic.py", "argv": [], "ppid": 1})
        for k in range(1, n - 2):
            if k % 5 == 4:
                ev(k, "stdout", {"text": f"line {k}\n", "bytes": 8})
            elif k % 2:
                ev(k, "message", {"direction": "to_child", "message": {"n": k}})
            else:
                ev(k, "message", {"direction": "to_parent", "message": {"n": k - 1, "ok": True}})
        code, sig = (1, None) if i % 7 == 3 else (None, "SIGTERM") if i % 7 == 5 else (0, None)
        ev(n - 2, "exit", {"code": code, "signal": sig})
        ev(n - 1, "close", {"code": code, "signal": sig})
    out.sort(key=lambda e: e["t"])
    for seq, e in enumerate(out, 1):
        e["seq"] = seq
    return out


def write_trace(path: Any, jobs: int, events: int) -> Any:
    path.write_text("".join(json.dumps(e) + "\n" for e in synthetic_trace(jobs, events)))
    return path


# ---------------------------------------------------------------- fifty jobs on screen
#: The mix the screenshots and the process panel are tested with: mostly cheap children
#: (`true` costs a millisecond), a few forked Python children that talk (messages on the
#: timeline), failures of each kind, and two that keep running (one with grandchildren).
JOB_MIX: list[tuple[int, dict[str, Any]]] = [
    (4, {"kind": "fork", "program": "compute.py", "message": {"min": 0, "max": 1000}}),
    (2, {"kind": "spawn", "command": "false", "args": []}),
    (1, {"kind": "fork", "program": "crash.py", "args": ["0"]}),
    (1, {"kind": "exec", "command": "sleep 5", "timeout": 0.1}),
    (1, {"kind": "spawn", "command": "sleep", "args": ["600"]}),
    (1, {"kind": "fork", "program": "grandchildren.py", "args": ["2", "600"]}),
    (2, {"kind": "spawn", "command": "seq", "args": ["1", "3"]}),
]


def ensure_jobs(live: Any, count: int = 50) -> list[str]:
    """The mix above, then as many `true`s as it takes for `count` jobs on the shared server;
    returns the ids of the ones that keep running (for the caller to kill)."""
    status, data = live.json("GET", "/api/jobs")
    assert status == 200, data
    have = len(data["jobs"])
    running: list[str] = []
    specs = [spec for n, spec in JOB_MIX for _ in range(n)]
    specs += [{"kind": "spawn", "command": "true", "args": []}] * max(0, count - have - len(specs))
    for spec in specs:
        status, job = live.json("POST", "/api/jobs", spec)
        assert status in (200, 201), job
        job = job.get("job", job)
        if spec.get("args") in (["600"], ["2", "600"]):
            running.append(job["id"])
    return running
