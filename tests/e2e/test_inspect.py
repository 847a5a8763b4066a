"""The explorer's Inspect panel, driven as a person would: launch a child, see its fds drawn
against the server's, kill it, download a trace and check it against the format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import traceformat
from e2etest import SLOW, App
from playwright.sync_api import Page, expect


def launch_from_form(page: Page, program: str, transport: str = "auto", message: str = "") -> str:
    """Launch one fork job with the launch panel; the tree selects it and the panel names it
    by its number (#3). Returns its id."""
    page.select_option("#l-kind", "fork")
    page.select_option("#l-program", program)
    page.select_option("#l-transport", transport)
    page.fill("#l-message", message)
    page.click("#l-submit")
    expect(page.locator("#launch-msg")).to_contain_text("Launched", timeout=SLOW)
    text = page.locator("#launch-msg").inner_text()
    name = text.split("Launched ", 1)[1].split(" ", 1)[0]
    assert re.fullmatch(r"#\d+", name), text
    node = page.locator(f'#tree .node[data-number="{name[1:]}"]')
    expect(node).to_have_attribute("aria-selected", "true", timeout=SLOW)
    expect(page.locator("#inspect-title")).to_contain_text(f"{name} · fork {program}", timeout=SLOW)
    job_id = node.get_attribute("data-job")
    assert job_id
    return job_id


def test_fd_diagram_shows_the_channel_and_stdio_against_the_servers_fds(app: App) -> None:
    page = app.open("/")
    job_id = launch_from_form(page, "echo.py", "socketpair")
    channel = page.locator("#fds-diagram .fd-row[data-role='ipc channel']")
    expect(channel).to_have_count(1, timeout=SLOW)
    truth = app.api("GET", f"/api/jobs/{job_id}/fds")
    fd = truth["channel"]["fds"][0]
    expect(channel).to_have_attribute("data-fd", str(fd))
    expect(channel.locator(".fd-role")).to_have_text("ipc channel · socketpair")
    expect(channel.locator(".fd-how")).to_have_text(f"NODE_CHANNEL_FD={fd}")
    expect(channel.locator(".fd-box.child .fd-num")).to_have_text(f"fd {fd}")
    (row,) = [r for r in truth["fds"] if r["fd"] == fd]
    parent_fd = row["peer"]["fds"][0]["fd"]
    expect(channel.locator(".fd-box.parent .fd-num")).to_have_text(f"fd {parent_fd}")
    expect(channel.locator(".fd-arrow")).to_have_text("⇄")
    for fd, role, arrow in ((0, "stdin", "→"), (1, "stdout", "←"), (2, "stderr", "←")):
        stdio = page.locator(f"#fds-diagram .fd-row[data-fd='{fd}']")
        expect(stdio.locator(".fd-role")).to_have_text(f"{role} · pipe")
        expect(stdio.locator(".fd-arrow")).to_have_text(arrow)
        inode = stdio.locator(".fd-box.child .fd-target").inner_text()
        expect(stdio.locator(".fd-box.parent .fd-target")).to_have_text(inode)  # one pipe

    # Killed, the child's fds are gone; the panel says so (a note, not an error), and keeps
    # the last diagram, dimmed.
    page.select_option("#kill-signal", "SIGKILL")
    page.click("#kill-form button[type=submit]")
    expect(page.locator("#fds-msg")).to_contain_text("has ended", timeout=SLOW)
    expect(page.locator("#fds-msg")).not_to_have_class(re.compile("error"))
    expect(page.locator("#fds-diagram")).to_have_attribute("data-state", "gone")


def test_a_finished_job_gets_a_note_and_no_request_that_must_fail(app: App) -> None:
    """An ended job has no fds and no channel left: the panel says so in a neutral note with
    the job's name, and asks the server nothing that can only answer 404 or 409 (each of which
    the browser would log as an error)."""
    job = app.launch({"kind": "fork", "program": "compute.py", "message": {"min": 0, "max": 10}})
    other = app.launch({"kind": "spawn", "command": "true", "args": []})
    page = app.open("/")
    node = page.locator(f'#tree .node[data-job="{job["id"]}"]')
    expect(node).to_have_attribute("data-state", "exited", timeout=SLOW)
    page.locator(f'#tree .node[data-job="{other["id"]}"]').click()
    failed: list[str] = []
    errors: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    node.click()
    name = f"#{job['number']}"
    msg = page.locator("#fds-msg")
    expect(msg).to_have_text(re.compile(rf"^{name} has ended: its fds are closed"), timeout=SLOW)
    expect(msg).not_to_have_class(re.compile("error"))
    expect(page.locator("#inspect-title")).to_contain_text(f"{name} · fork compute.py")
    expect(page.locator("#fds-read")).to_be_disabled()
    page.click("#tab-frames")
    frames = page.locator("#frames-msg")
    expect(frames).to_have_text(re.compile(rf"^{name} has ended: its channel is closed"))
    expect(frames).not_to_have_class(re.compile("error"))
    expect(page.locator("#frames-record")).to_be_disabled()
    page.click("#tab-fds")  # back: the fds tab reads again on showing, if it may
    expect(msg).to_contain_text("has ended")
    # Every request the page made has been answered by now: the job record, and nothing else.
    page.evaluate("fetch('/api/jobs').then(r => r.json())")
    assert failed == [], failed
    assert errors == [], errors


def test_a_pipe_channel_is_two_fds_one_each_way(app: App) -> None:
    page = app.open("/")
    job_id = launch_from_form(page, "echo.py", "pipe")
    channel = page.locator("#fds-diagram .fd-row[data-role='ipc channel']")
    expect(channel).to_have_count(2, timeout=SLOW)
    expect(channel.locator(".fd-how")).to_contain_text(["IPC_EXPLORER_CHANNEL=pipe:"] * 2)
    assert sorted(channel.locator(".fd-arrow").all_inner_texts()) == ["←", "→"]
    app.api("POST", f"/api/jobs/{job_id}/kill", {"signal": "SIGKILL"})


def test_trace_buttons_download_a_valid_trace(app: App, tmp_path: Path) -> None:
    page = app.open("/")
    job_id = launch_from_form(page, "echo.py", "auto")
    expect(page.locator("#trace-job")).not_to_have_attribute("aria-disabled", "true")
    with page.expect_download() as info:
        page.click("#trace-job")
    path = tmp_path / "job.json"
    info.value.save_as(path)
    assert info.value.suggested_filename == f"ipc-explorer-{job_id}-trace.json"
    doc = json.loads(path.read_text())
    assert traceformat.problems(doc) == []
    assert doc["otherData"]["jobs"] == [job_id]
    names = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"]
    number = app.api("GET", f"/api/jobs/{job_id}")["number"]
    assert any(name.startswith(f"#{number} echo.py") for name in names), names

    with page.expect_download() as info:
        page.click("#trace-all")
    info.value.save_as(tmp_path / "all.json")
    everything = json.loads((tmp_path / "all.json").read_text())
    assert traceformat.problems(everything) == []
    assert job_id in everything["otherData"]["jobs"]
    app.api("POST", f"/api/jobs/{job_id}/kill", {"signal": "SIGKILL"})


def send_from_form(page: Page, text: str) -> None:
    page.fill("#send-input", text)
    page.click("#send-form button[type=submit]")
    expect(page.locator("#talk-msg")).to_contain_text("Sent to")


def test_channel_bytes_show_read_boundaries_beside_the_messages(app: App) -> None:
    page = app.open("/")
    job_id = launch_from_form(page, "raw_frames.py")
    page.click("#tab-frames")
    page.select_option("#frames-limit", "65536")
    page.click("#frames-record")
    expect(page.locator("#frames-msg")).to_have_attribute("data-state", "recording")

    # Three frames in one write(): one read() box holding three whole frames.
    send_from_form(page, '{"type": "burst", "count": 3}')
    burst = page.locator(".chunk[data-direction=read][data-ordinal='read #1']")
    expect(burst).to_have_attribute("data-frames", "3", timeout=SLOW)
    expect(burst.locator(".frame-msg")).to_have_text(['{"n":1}', '{"n":2}', '{"n":3}'])
    expect(burst.locator(".hex-bytes").first).to_contain_text("7b226e223a317d0a")
    # What the server wrote is there too, as the bytes of the message sent.
    expect(page.locator(".chunk[data-direction=write] .frame-msg").first).to_have_text(
        '{"type":"burst","count":3}'
    )

    # Half a frame now, the rest only after the next message: one frame across two reads.
    send_from_form(page, '{"type": "split"}')
    first_half = page.locator(".chunk[data-ordinal='read #2']")
    expect(first_half.locator(".chunk-notes")).to_contain_text(
        "rest has not crossed yet", timeout=SLOW
    )
    send_from_form(page, '"go on"')
    second_half = page.locator(".chunk[data-ordinal='read #3']")
    expect(second_half.locator(".chunk-notes")).to_contain_text(
        "ends a frame begun in read #2", timeout=SLOW
    )
    split = second_half.locator(".frame-item.split")
    expect(split.locator(".frame-where")).to_contain_text("split across read #2 and read #3")
    expect(split.locator(".frame-msg")).to_have_text(
        '{"type":"split","text":"this frame crosses two reads"}'
    )
    expect(first_half.locator(".chunk-notes")).to_contain_text("continues in read #3")

    page.click("#frames-stop")
    expect(page.locator("#frames-msg")).to_contain_text("Stopped")
    app.api("POST", f"/api/jobs/{job_id}/kill")
