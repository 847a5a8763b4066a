"""The explorer with several runners (issue 11): the process tree groups jobs by the host that
runs them, and each timeline lane names its host. A real server with --redis, a real agent
process, a real redis-server, Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster
from e2etest import SLOW, App
from playwright.sync_api import Page, expect
from redis_server import MISSING, REDIS_SERVER, RedisServer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    with RedisServer(tmp_path_factory.mktemp("redis")) as redis, Cluster(redis) as running:
        running.add_server("e2e-server")
        running.add_agent("e2e-agent")
        yield running


def test_the_tree_groups_jobs_by_host_and_lanes_name_theirs(
    cluster: Cluster, page: Page, artifacts_dir: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    app = App(cluster.servers["e2e-server"], page)
    app.open("/")
    extra: list[dict] = []
    here = app.launch({"kind": "spawn", "command": "sleep", "args": ["60"]})
    there = app.launch({"kind": "spawn", "command": "sleep", "args": ["60"], "host": "e2e-agent"})
    try:
        for job, host in ((here, "e2e-server"), (there, "e2e-agent")):
            group = page.locator(f'#tree li[data-host="{host}"]')
            expect(group.locator(".server-node")).to_contain_text(host, timeout=SLOW)
            node = group.locator(f'.node[data-job="{job["id"]}"]')
            expect(node).to_have_attribute("data-state", "running", timeout=SLOW)
        lanes = page.locator("#timeline .tl-lane-sub")
        expect(lanes.filter(has_text="on e2e-agent")).to_have_count(1, timeout=SLOW)
        expect(lanes.filter(has_text="on e2e-server")).to_have_count(1)

        # The launch panel offers the other runners and places the job there.
        expect(page.locator("#l-host-field")).to_be_visible(timeout=SLOW)
        page.select_option("#l-kind", "spawn")
        page.fill("#l-cmd", "sleep")
        page.fill("#l-args", "60")
        page.select_option("#l-host", "e2e-agent")
        page.click("#l-submit")
        expect(page.locator("#launch-msg")).to_contain_text("Launched", timeout=SLOW)
        launched = page.locator('#tree .node[aria-selected="true"]').get_attribute("data-job")
        placed = app.api("GET", f"/api/jobs/{launched}")
        assert placed["host"] == "e2e-agent"
        extra.append(placed)
        shots = artifacts_dir / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "e2e-hosts.png"))
    finally:
        for job in (here, there, *extra):
            app.api("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    assert not errors, f"JavaScript errors on the page: {errors}"
