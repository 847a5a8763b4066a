"""Fixtures for the end-to-end tests: one real server per session, pages opened with its token,
a screenshot per test under the artifacts folder the test command prints, and a harness page
that loads the browser-side modules on their own (no app) for their unit tests."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2etest import App, ensure_jobs
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
        # The whole page when it is of a readable length; otherwise what is in view (the
        # seed examples page is very long, and the test leaves its example in view).
        tall = page.evaluate("document.documentElement.scrollHeight") > 2600
        page.screenshot(path=str(shots / f"e2e-{name}.png"), full_page=not tall)
    except Exception:  # a crashed page still lets the test report its own failure
        pass
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def fifty_jobs(live: Any) -> Iterator[None]:
    """At least fifty jobs on the shared server (cheap ones), as the screenshots want; the
    two that keep running are killed at the end of the session."""
    running = ensure_jobs(live, 50)
    yield
    for job_id in running:
        live.json("POST", f"/api/jobs/{job_id}/kill", {"signal": "SIGKILL"})


# ---------------------------------------------------------------- the modules, without the app
ROOT = Path(__file__).resolve().parents[2]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    """The repository served as static files, so a page can import `static/js/*.js`."""
    handler = functools.partial(_QuietHandler, directory=str(ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def harness(
    page: Page, static_url: str, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A page with the store as `window.S`, the timeline's model as `window.TM`, the
    lesson's speed-up reasons as `window.SP` and the chart helpers as `window.CH`."""
    # A page on the same origin as the modules, so `import` is allowed.
    page.route(
        f"{static_url}/harness.html",
        lambda route: route.fulfill(
            content_type="text/html",
            body="<!doctype html><title>harness</title><script type=module>"
            "import * as store from '/static/js/store.js'; window.S = store;"
            "import * as model from '/static/js/timeline-model.js'; window.TM = model;"
            "import * as speedup from '/static/js/speedup.js'; window.SP = speedup;"
            "import * as charts from '/static/js/charts.js'; window.CH = charts;"
            "</script>",
        ),
    )
    page.goto(f"{static_url}/harness.html")
    page.wait_for_function("window.S && window.TM && window.SP && window.CH")
    yield page
    shots = artifacts_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"e2e-{request.module.__name__}-harness.png"))
