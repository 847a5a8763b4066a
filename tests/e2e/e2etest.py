"""Helpers shared by the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

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
