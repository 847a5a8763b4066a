"""Fixtures for the end-to-end tests: one real server per session, pages opened with its token,
and a screenshot per test under the artifacts folder the test command prints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-playwright's fallback `base_url` fixture.

    The plugin defines it as an instance method, which pytest 9 warns about (an error under
    `filterwarnings = error`); the tests build absolute URLs from the live server instead.
    """
    return None


@pytest.fixture(scope="session")
def live() -> Iterator[Any]:
    """The real app (tests/server.py's LiveServer) on a free 127.0.0.1 port, shared by all tests."""
    try:
        from server import LiveServer  # tests/server.py, by the backend
    except ImportError as exc:  # pragma: no cover - only while the backend is not there yet
        pytest.skip(f"tests/server.py LiveServer not available: {exc}")
    with LiveServer() as srv:
        yield srv


@pytest.fixture
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


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
        """An API call with the page's cookie (the same session the user has)."""
        req = self.page.request
        headers = {"Authorization": f"Bearer {self.live.token}"}
        url = f"{self.base}{path}"
        if method == "GET":
            res = req.get(url, headers=headers)
        elif method == "DELETE":
            res = req.delete(url, headers=headers)
        else:
            res = req.fetch(url, method=method, headers=headers, data=body)
        assert res.ok, f"{method} {path}: {res.status} {res.text()}"
        return res.json() if res.text() else None

    def launch(self, spec: dict) -> dict:
        job = self.api("POST", "/api/jobs", spec)
        return job.get("job", job)


@pytest.fixture
def app(
    live: Any, page: Page, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[App]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield App(live, page)
    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    try:
        page.screenshot(path=str(shots / f"e2e-{name}.png"), full_page=True)
    except Exception:  # a crashed page still lets the test report its own failure
        pass
    assert not errors, f"JavaScript errors on the page: {errors}"
