"""The page says why its live feed is down: "server stopped" when the server goes away (close
1001), "server full" when every feed slot is in use (HTTP 503 before the upgrade), and it
comes back by itself once a slot frees. Each test runs its own server: it stops or fills it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websocket
from e2etest import SLOW
from playwright.sync_api import Page, expect
from server import LiveServer


@pytest.fixture
def errors(page: Page) -> Iterator[list[str]]:
    seen: list[str] = []
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    yield seen
    assert not seen, f"JavaScript errors on the page: {seen}"


def open_page(page: Page, srv: LiveServer) -> None:
    page.goto(f"{srv.base_url}/?token={srv.token}")


def test_the_page_says_server_stopped_when_the_server_goes_away(
    page: Page, errors: list[str]
) -> None:
    srv = LiveServer(["--grace", "1"])
    with srv:
        open_page(page, srv)
        status = page.locator("#feed-status")
        expect(status).to_have_attribute("data-state", "live", timeout=SLOW)
        server = page.locator("#tree .server-node")
        expect(server.locator("> .state")).to_have_text("running")
        srv.stop()
        expect(status).to_have_attribute("data-state", "stopped", timeout=SLOW)
        expect(status).to_have_text("server stopped")
        expect(page.locator("#feed-banner")).to_contain_text("The server stopped")
        # The process tree's server node says it too (not "running" under a "stopped" pill).
        expect(server.locator("> .state")).to_have_text("stopped")
        expect(server).to_have_attribute("data-state", "stopped")
        # Its retries fail while the server is gone: it still says why.
        page.wait_for_function("window.ipcExplorer.feed.reconnects >= 1", timeout=SLOW)
        expect(status).to_have_attribute("data-state", "stopped")


def test_the_page_says_server_full_and_connects_when_a_slot_frees(
    page: Page, errors: list[str]
) -> None:
    with LiveServer(["--max-feeds", "1"]) as srv:
        tab = websocket.create_connection(srv.ws_url, origin=srv.origin, timeout=30)
        try:
            open_page(page, srv)
            status = page.locator("#feed-status")
            expect(status).to_have_attribute("data-state", "full", timeout=SLOW)
            expect(status).to_have_text("server full")
            expect(page.locator("#feed-banner")).to_contain_text("--max-feeds")
        finally:
            tab.close()
        expect(status).to_have_attribute("data-state", "live", timeout=SLOW)
        expect(page.locator("#feed-banner")).to_be_hidden()
