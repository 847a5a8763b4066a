"""Fixtures for the `ipc` tests; the helpers they share are in `ipctest.py`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from ipctest import ROOT, TIMEOUT


@pytest.fixture
def reap() -> Iterator[list[Any]]:
    """A list a test appends its children to; after the test each is killed (group), reaped
    and closed.

    This keeps one failing test from leaking children (or their pipes) into the next one.
    """
    children: list[Any] = []
    yield children
    for child in children:
        try:
            if child.exit_code is None and child.signal_code is None:
                child.kill("SIGKILL")
            child.wait(timeout=TIMEOUT)
            child.wait_closed(timeout=TIMEOUT)
        except Exception:
            pass


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """os.environ plus the project root on PYTHONPATH, for children started outside `ipc.fork`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env
