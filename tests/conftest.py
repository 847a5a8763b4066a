"""Fixtures shared by every test folder.

Each folder (tests/ipc, tests/web, tests/e2e) keeps its own fixtures in its own conftest.py;
this file holds only what all of them need: the artifacts folder, the Playwright launch
arguments for Debian's Chromium, a real redis-server for the scale-out tests, and the
end-of-session check that no child was left behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import MISSING, REDIS_SERVER, RedisServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("IPC_EXPLORER_ARTIFACTS", ROOT / "test-artifacts"))

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"screenshots and traces: {ARTIFACTS}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    shots = ARTIFACTS / "screenshots"
    if shots.is_dir():
        count = len(list(shots.glob("*.png")))
        terminalreporter.write_line(f"screenshots ({count}) saved under: {shots}")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch arguments, pointed at Debian's Chromium.

    `playwright install` cannot download a browser here, and `--browser-channel` does not
    find Debian's build, so the executable path is given directly.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (scripts/setup.sh --browser installs it)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (127.0.0.1, a free port, no persistence)."""
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and start again (same port)."""
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    if not redis_server.ping():  # a test stopped it: start it again
        redis_server.start()
    redis_server.command("FLUSHALL")
    return redis_server.url


def _zombie_children(pid: int) -> list[int]:
    """Pids of zombie processes whose parent is `pid` (read from /proc, Linux only)."""
    zombies = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Format: pid (comm) state ppid ...; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            zombies.append(int(entry.name))
    return zombies


@pytest.fixture(scope="session", autouse=True)
def no_zombies_left_behind():
    """Fail the session if the test process ends up with unreaped children."""
    yield
    import ipc

    ipc.shutdown(grace=5.0)
    zombies = _zombie_children(os.getpid())
    assert not zombies, f"zombie children left after the suite: {zombies}"
