"""The browser-side event store, tested in Chromium without the app.

The store is what every view reads, so its rules (dedupe by seq, job state from events,
bounded scroll-back with dropped counts, replacement marks for invalid UTF-8, NDJSON round
trip) are checked here directly: a static file server hands out `static/`, and a harness
page imports the module and returns results to Python.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

import ipc


def ev(seq: int, type_: str, data: dict, job: str = "j1") -> dict:
    return {"seq": seq, "job": job, "pid": 100, "type": type_, "t": 1000 + seq / 10, "data": data}


def test_state_follows_lifecycle_and_duplicates_are_ignored(harness: Page) -> None:
    events = [
        ev(1, "spawn", {}),
        ev(2, "message", {"direction": "to_child", "message": "开始计算"}),
        ev(3, "message", {"direction": "to_parent", "message": 50005000}),
        ev(3, "message", {"direction": "to_parent", "message": 50005000}),  # replayed twice
        ev(4, "exit", {"code": None, "signal": "SIGKILL"}),
        ev(5, "close", {"code": None, "signal": "SIGKILL"}),
    ]
    result = harness.evaluate(
        """(events) => {
            const s = new S.Store();
            const states = [];
            for (const e of events) { s.apply(e); states.push(s.jobs.get('j1').state); }
            const j = s.jobs.get('j1');
            return {states, kept: s.events.length, messages: j.messages, text: S.stateText(j),
                    latency: s.events[2]._latency, lastSeq: s.lastSeq};
        }""",
        events,
    )
    assert result["states"] == [
        "running",
        "running",
        "running",
        "running",
        "signaled",
        "signaled",
    ]
    assert result["kept"] == 5
    assert result["messages"] == 2
    assert result["text"] == "signaled SIGKILL"
    assert result["latency"] == pytest.approx(0.1)
    assert result["lastSeq"] == 5


def test_a_job_knows_its_host_and_a_lost_job_says_so(harness: Page) -> None:
    """Scale-out: events carry the runner's name; a `lost` event ends the job's wait."""
    events = [
        {**ev(1, "spawn", {}), "host": "agent-1"},
        {**ev(2, "stdout", {"text": "half a li"}), "host": "agent-1"},
        {**ev(3, "lost", {"message": "runner agent-1 stopped answering"}), "host": "agent-1"},
    ]
    result = harness.evaluate(
        """(events) => {
            const s = new S.Store();
            s.applyAll(events);
            const j = s.jobs.get('j1');
            return {host: j.host, state: j.state, text: S.stateText(j), lines: j.lines};
        }""",
        events,
    )
    assert result["host"] == "agent-1"
    assert result["state"] == "lost" and result["text"] == "lost (runner gone)"
    assert result["lines"][-2:] == [
        {"stream": "stdout", "text": "half a li"},
        {"stream": "sys", "text": "lost: runner agent-1 stopped answering"},
    ]


def test_the_store_speaks_the_library_s_state_names(harness: Page) -> None:
    """One vocabulary from ipc to the page: every state the store gives a job is an
    `ipc.State`, whether it came from the feed or from the REST API."""
    names = [state.value for state in ipc.State]
    result = harness.evaluate(
        """(names) => {
            const s = new S.Store();
            const seen = {};
            const run = (id, events) => {
                for (const [i, [type, data]] of events.entries()) {
                    s.apply({seq: (s.lastSeq ?? 0) + 1, job: id, pid: 1, type, t: i, data});
                }
                seen[id] = [s.jobs.get(id).state, S.stateText(s.jobs.get(id))];
            };
            run('exited', [['spawn', {}], ['exit', {code: 3, signal: null}]]);
            run('signaled', [['spawn', {}], ['exit', {code: null, signal: 'SIGRTMIN+1'}]]);
            const spawnError = {type: 'SpawnError', message: 'spawn x ENOENT', code: 'ENOENT'};
            run('failed', [['error', spawnError], ['close', {code: null, signal: null}]]);
            run('running', [['spawn', {}], ['error', {type: 'ProtocolError', message: 'bad'}]]);
            for (const state of names) {
                s.upsertJob({id: `api-${state}`, state, exit_code: null, signal: null});
                seen[`api-${state}`] = [s.jobs.get(`api-${state}`).state];
            }
            return seen;
        }""",
        names,
    )
    assert result["exited"] == ["exited", "exited 3"]
    assert result["signaled"] == ["signaled", "signaled SIGRTMIN+1"]
    assert result["failed"] == ["failed", "failed"]
    assert result["running"] == ["running", "running"], "an error is not an end"
    for state in names:
        assert result[f"api-{state}"] == [state]
    assert {v[0] for v in result.values()} <= set(names)


def test_scroll_back_is_bounded_and_counts_what_it_dropped(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
            const s = new S.Store({maxLines: 100});
            let seq = 1;
            s.apply({seq: seq++, job: 'j', pid: 1, type: 'spawn', t: 1, data: {}});
            for (let i = 0; i < 50; i++) {
                const lines = Array.from({length: 10}, (_, k) => `line ${i * 10 + k}`);
                const text = lines.join('\\n') + '\\n';
                s.apply({seq: seq++, job: 'j', pid: 1, type: 'stdout', t: 2, data: {text}});
            }
            const add = (type, data) => s.apply({seq: seq++, job: 'j', pid: 1, type, t: 3, data});
            add('stderr', {text: 'oops'});
            add('exit', {code: 1, signal: null});
            const j = s.jobs.get('j');
            return {lines: j.lines.length, dropped: j.droppedLines, first: j.lines[0].text,
                    last: j.lines.at(-1), full: s.fullOutput('j').split('\\n').length,
                    state: S.stateText(j)};
        }"""
    )
    assert result["lines"] == 100
    assert result["dropped"] == 401  # 500 stdout lines + 1 stderr line, 100 kept
    assert result["first"] == "line 401"
    assert result["last"] == {"stream": "stderr", "text": "oops"}
    assert result["full"] == 501  # copy / download keep everything
    assert result["state"] == "exited 1"


def test_invalid_utf8_becomes_replacement_marks(harness: Page) -> None:
    text = harness.evaluate(
        """() => {
            const base64 = btoa(String.fromCharCode(0x61, 0xff, 0xfe, 0x62));
            return S.outputText({type: 'stdout', data: {base64}});
        }"""
    )
    assert text == "a\ufffd\ufffdb"


def test_ndjson_export_loads_back_for_replay(harness: Page) -> None:
    result = harness.evaluate(
        """() => {
            const s = new S.Store();
            s.apply({seq: 1, job: 'j', pid: 1, type: 'spawn', t: 1, data: {}});
            s.apply({seq: 2, job: 'j', pid: 1, type: 'message', t: 2,
                     data: {direction: 'to_parent', message: {sum: 1}}});
            const text = s.toNDJSON() + 'not json\\n';
            const {events, bad} = S.parseNDJSON(text);
            const r = new S.Store();
            r.applyAll(events);
            const hasPrivate = text.includes('_latency');
            return {n: events.length, bad, hasPrivate, jobs: r.jobs.size};
        }"""
    )
    assert result == {"n": 2, "bad": 1, "hasPrivate": False, "jobs": 1}


def test_big_integers_stay_exact(harness: Page) -> None:
    """Python sends exact integers past 2^53 (the seed's 0..4e9 sum); they must not round."""
    result = harness.evaluate(
        """() => {
            const text = '{"seq": 1, "job": "j", "pid": 1, "type": "message", "t": 1,'
                + ' "data": {"direction": "to_parent", "message": 7999999998000000000}}';
            const ev = S.parseJSON(text);
            return {kind: typeof ev.data.message, shown: S.preview(ev.data.message),
                    back: S.stringify(ev.data), small: typeof S.parseJSON('{"a": 5}').a};
        }"""
    )
    assert result == {
        "kind": "bigint",
        "shown": "7999999998000000000",
        "back": '{"direction":"to_parent","message":7999999998000000000}',
        "small": "number",
    }


def test_a_job_is_named_by_its_number_and_errors_name_it_too(harness: Page) -> None:
    """People read "#3", not the job's id (a UUID): in names, titles and the server's errors."""
    uuid = "39d626e2-f205-40ff-ab7e-d55fffd402d3"
    result = harness.evaluate(
        """(uuid) => {
          const live = new S.Store();
          live.upsertJob({id: uuid, number: 3, program: "echo.py", args: ["--serve"]});
          const job = live.jobs.get(uuid);
          // A replay of a file names the jobs the live page knows as the live page does.
          const replay = new S.Store({namesFrom: live});
          replay.apply({seq: 1, job: uuid, pid: 5, type: "spawn", t: 1, data: {}});
          replay.apply({seq: 2, job: "j9", pid: 6, type: "spawn", t: 2, data: {}});
          return {
            name: S.jobName(job), title: S.jobTitle(job),
            replayed: S.jobName(replay.jobs.get(uuid)), unknown: S.jobName(replay.jobs.get("j9")),
            nameless: S.jobName({id: uuid}),
            error: S.nameJobs(`job ${uuid} is not running (state exited); nothing to signal`, job),
            possessive: S.nameJobs(`job ${uuid}'s channel is closed`, job),
            other: S.nameJobs("job 1234 is not known", job),
          };
        }""",
        uuid,
    )
    assert result["name"] == "#3"
    assert result["title"] == "#3 · echo.py --serve"
    assert result["replayed"] == "#3"
    assert result["unknown"] == "job j9"  # not known here: its id's start, so two stay apart
    assert result["nameless"] == "job 39d626e2"
    assert result["error"] == "#3 is not running (state exited); nothing to signal"
    assert result["possessive"] == "#3's channel is closed"
    assert result["other"] == "job 1234 is not known"
