"""Fixtures for the scale-out tests: a real redis-server, real servers (gunicorn, as users run
them) and real agents, all on 127.0.0.1, sharing jobs and events through Redis.

`cluster` (one per module) is two servers and one agent on one Redis: ``server-a`` with the
default command policy, ``server-b`` with ``--allow-any-command`` (so that a test can show
the agent's own policy refusing what a server let through), and ``agent-1``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # server.py, redis_server.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "web"))  # webtest.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scaletest.py

from cluster import Cluster
from redis_server import MISSING, REDIS_SERVER, RedisServer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if REDIS_SERVER is None:
        pytest.skip(MISSING)
    with RedisServer(tmp_path_factory.mktemp("redis")) as redis, Cluster(redis) as running:
        running.add_server("server-a")
        running.add_server("server-b", "--allow-any-command")
        running.add_agent("agent-1")
        yield running
