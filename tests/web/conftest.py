"""Fixtures for the web tests: a real server on 127.0.0.1 and a real WebSocket client.

`srv` is Werkzeug's threaded server in this process (fast, and the test can look inside the
app); tests that need a limit changed make their own `ThreadServer(config)`. The gunicorn
server (`LiveServer`) is used by test_live.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/server.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # webtest.py

from server import ThreadServer
from webtest import Feed


@pytest.fixture(scope="module")
def srv() -> Iterator[ThreadServer]:
    with ThreadServer() as server:
        yield server


@pytest.fixture
def feed(srv: ThreadServer) -> Iterator[Feed]:
    f = Feed(srv)
    yield f
    f.close()
