"""The timeline's model (static/js/timeline-model.js), tested in Chromium without the app: the
rules that make the picture true at every scale — every event in view is in exactly one drawn
group, groups cost one per few pixels however many events, labels never overlap, the index
follows the store as it grows, trims and resets, lanes nest and fold."""

from __future__ import annotations

from playwright.sync_api import Page


def test_groups_hold_every_event_in_view_once_and_cost_one_per_gap(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
          // 100,000 events in 10 s, unevenly spaced (dense bursts and gaps).
          const arr = [];
          for (let i = 0; i < 100000; i++) arr.push({t: 100 + 10 * (i / 100000) ** 2, seq: i});
          const out = [];
          const views = [[100, 110, 800], [104, 104.5, 800], [100, 100.001, 300]];
          for (const [start, end, width] of views) {
            const pxPerSec = width / (end - start);
            const groups = [];
            TM.forGroups(arr, start, end, pxPerSec, 8, (i, j) => groups.push([i, j]));
            const inView = arr.filter(e => e.t >= start && e.t <= end).length;
            const held = groups.reduce((n, [i, j]) => n + j - i, 0);
            let contiguous = true, apart = true;
            for (let k = 1; k < groups.length; k++) {
              if (groups[k][0] !== groups[k - 1][1]) contiguous = false;
              const gap = (arr[groups[k][0]].t - arr[groups[k - 1][0]].t) * pxPerSec;
              if (gap < 8) apart = false;
            }
            out.push({inView, held, groups: groups.length, contiguous, apart, width});
          }
          return out;
        }"""
    )
    for r in result:
        assert r["held"] == r["inView"], r
        assert r["contiguous"] and r["apart"], r
        assert r["groups"] <= r["width"] / 8 + 1, r


def test_labels_never_overlap_and_stay_in_the_plot(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
          let seed = 7;
          const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
          const rows = new TM.LabelRows(150, 900, 2);
          const placed = [];
          for (let k = 0; k < 2000; k++) {
            const w = 20 + rnd() * 180;
            const spot = rows.place(140 + rnd() * 780, w);
            if (spot) placed.push({row: spot.row, x0: spot.x, x1: spot.x + w});
          }
          let overlaps = 0, outside = 0;
          for (const a of placed) {
            if (a.x0 < 150 || a.x1 > 900) outside++;
            for (const b of placed) {
              if (a !== b && a.row === b.row && a.x0 < b.x1 && b.x0 < a.x1) overlaps++;
            }
          }
          return {placed: placed.length, overlaps, outside};
        }"""
    )
    assert result["placed"] > 5
    assert result["overlaps"] == 0 and result["outside"] == 0, result


def test_the_index_follows_the_store_as_it_grows_trims_and_resets(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
          const s = new S.Store({maxEvents: 50});
          const idx = new TM.EventIndex();
          let seq = 1;
          const add = (job, type, data = {}) =>
            s.apply({seq: seq, job, pid: 1, type, t: 1000 + seq++ / 100, data});
          const count = () => [...idx.lanes.values()].reduce(
            (n, l) => n + l.life.length + l.msg.length + l.out.length, 0);
          add('a', 'spawn'); add('b', 'spawn');
          for (let k = 0; k < 20; k++) {
            add(k % 2 ? 'a' : 'b', 'message', {direction: 'to_child', message: k});
          }
          idx.update(s);
          const grown = count();
          // The store keeps 50: each event now pushes one out, and the index follows step by step.
          for (let k = 0; k < 60; k++) {
            add('a', 'stdout', {text: 'x'});
            idx.update(s);
          }
          add('b', 'stats', {rss: 1});  // not drawn, not indexed
          idx.update(s);
          const trimmed = count();
          const drawable = s.events.filter(e => e.type !== 'stats').length;
          const aFirst = idx.lanes.get('a').out[0].seq;
          const firstKept = s.events[0].seq;
          s.reset();
          add('c', 'spawn');
          idx.update(s);
          return {grown, trimmed, drawable, aFirst, firstKept,
                  afterReset: [...idx.lanes.keys()], total: count()};
        }"""
    )
    assert result["grown"] == 22
    assert result["trimmed"] == result["drawable"]
    assert result["aFirst"] >= result["firstKept"]
    assert result["afterReset"] == ["c"] and result["total"] == 1


def test_lanes_nest_fold_and_pin(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
          const s = new S.Store();
          s.upsertJob({id: 'j1', pid: 11, program: 'grandchildren.py'});
          s.upsertJob({id: 'j2', pid: 12, program: 'echo.py'});
          s.upsertJob({id: 'j3', pid: 13, program: 'child.py', parent: 'j1'});
          s.jobs.get('j1').grandchildren = [101, 102];
          const keys = (l) => l.all.map(r => `${r.key}@${r.depth}`);
          const open = TM.buildLanes(s);
          const folded = TM.buildLanes(s, {collapsed: new Set(['j1'])});
          const pinned = TM.buildLanes(s, {pinned: new Set(['j2'])});
          return {open: keys(open), folded: keys(folded),
                  fixed: pinned.fixed.map(r => r.key), scroll: pinned.scroll.map(r => r.key)};
        }"""
    )
    assert result["open"] == ["server@1", "j1@2", "j3@3", "j1/101@3", "j1/102@3", "j2@2"]
    assert result["folded"] == ["server@1", "j1@2", "j2@2"]
    assert result["fixed"] == ["server", "j2"]
    assert result["scroll"] == ["j1", "j3", "j1/101", "j1/102"]


def test_zoom_keeps_its_anchor_and_ticks_keep_their_distance(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
          const w = new TM.TimeWindow(10, 20);
          const k = (w2) => (13 - w2.start) / (w2.end - w2.start);
          const before = k(w);
          w.zoom(0.25, 13);
          const after = k(w);
          const span = w.span;
          w.zoom(1e-9, 13);
          const tk = TM.ticks(0, 7.3, 700, 110, 0);
          const gaps = tk.times.slice(1).map((t, i) => (t - tk.times[i]) * 700 / 7.3);
          return {before, after, span, min: w.span, gaps, step: tk.step,
                  labels: [TM.fmtOffset(1.5, 0.5), TM.fmtOffset(0.25, 0.05),
                           TM.fmtOffset(0.00002, 0.00001), TM.fmtOffset(63, 10)]};
        }"""
    )
    assert abs(result["before"] - result["after"]) < 1e-9
    assert abs(result["span"] - 2.5) < 1e-9
    assert result["min"] > 0.99e-5  # never narrower than the feed's timestamps mean anything
    assert result["gaps"] and min(result["gaps"]) >= 110
    assert result["labels"] == ["1.5 s", "250 ms", "20 µs", "63 s"]


def test_keyboard_walk_visits_every_mark_of_a_lane_in_order(harness: Page) -> None:
    """→ and ← step through a lane's marks across its three tracks, ties in seq order."""
    result = harness.evaluate(
        """() => {
          const s = new S.Store();
          const types = ['spawn', 'message', 'stdout', 'message', 'stderr', 'exit', 'close'];
          let seq = 1;
          for (let k = 0; k < 40; k++) {
            const type = types[k % types.length];
            const data = type === 'message' ? {direction: 'to_child', message: k} : {text: 'x'};
            // Pairs of events share a timestamp, across tracks.
            s.apply({seq: seq++, job: 'a', pid: 1, type, t: 10 + Math.floor(k / 2), data});
          }
          const idx = new TM.EventIndex();
          idx.update(s);
          const want = s.events.map(e => e.seq);
          const fwd = [];
          const walk = (from, dir) => {
            const out = [];
            for (let e = idx.step('a', from, dir); e; e = idx.step('a', e, dir)) out.push(e.seq);
            return out;
          };
          return {want, fwd: walk({t: -Infinity}, 1), back: walk({t: Infinity}, -1),
                  near: idx.nearest('a', 14.4).t, none: idx.step('zz', {t: 0}, 1),
                  inView: idx.hasBetween('a', 12.2, 12.8),
                  notInView: idx.hasBetween('a', 100, 200)};
        }"""
    )
    assert result["fwd"] == result["want"]
    assert result["back"] == result["want"][::-1]
    assert result["near"] == 14
    assert result["none"] is None
    assert result["inView"] is False and result["notInView"] is False


def test_a_lane_head_offers_shorter_texts_rather_than_cutting_one(harness: Page) -> None:
    """Longest first: the head shows the first that fits, so "#3 · grandchildren.py 2 600"
    becomes "#3 · grandchildren.py", then "#3"; the state line drops the pid, then the word."""
    result = harness.evaluate(
        """() => {
          const s = new S.Store();
          s.upsertJob({id: 'j1', number: 3, pid: 11, program: 'grandchildren.py',
                       args: ['2', '600']});
          s.apply({seq: 1, job: 'j1', pid: 11, type: 'exit', t: 1,
                   data: {code: null, signal: 'SIGTERM'}});
          s.jobs.get('j1').grandchildren = [101];
          const lanes = TM.buildLanes(s).all;
          return lanes.map((row) => TM.laneTexts(row));
        }"""
    )
    server, job, grand = result
    assert server == {"name": ["server (parent)", "server"], "sub": []}
    assert job["name"] == ["#3 · grandchildren.py 2 600", "#3 · grandchildren.py", "#3"]
    assert job["sub"] == ["pid 11 · signaled SIGTERM", "signaled SIGTERM", "SIGTERM"]
    assert grand["name"] == ["grandchild 101 · ended", "101 · ended", "101"]
