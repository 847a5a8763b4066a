"""Real clusters for tests: an ``agent`` process, and servers and agents on one Redis that are
all stopped (agents first) on exit. Used by tests/scale and tests/e2e."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from redis_server import RedisServer
from server import ROOT, LiveServer

START_TIMEOUT = 60.0


class AgentProcess:
    """``python -m webapp agent --redis URL --name NAME`` in its own process group."""

    def __init__(self, url: str, name: str, *args: str) -> None:
        self.url = url
        self.name = name
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "webapp", "agent", "--redis", self.url, "--name", self.name]
        self.proc = subprocess.Popen(
            [*cmd, *self.args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the agent did not start:\n" + "".join(self.output))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if " running (Redis " in line:
                self._ready.set()
        self.proc.stdout.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send `sig` to the agent alone; wait; KILL its group if it overstays."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(10)


class Cluster:
    """Servers and agents on one Redis, stopped (agents first) on exit."""

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis
        self.servers: dict[str, LiveServer] = {}
        self.agents: dict[str, AgentProcess] = {}

    @property
    def url(self) -> str:
        return self.redis.url

    def add_server(self, name: str, *args: str) -> LiveServer:
        server = LiveServer(["--redis", self.url, "--name", name, *args])
        server.start()
        self.servers[name] = server
        return server

    def add_agent(self, name: str, *args: str) -> AgentProcess:
        agent = AgentProcess(self.url, name, *args)
        agent.start()
        self.agents[name] = agent
        return agent

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        for agent in self.agents.values():
            agent.stop()
        for server in self.servers.values():
            server.stop()
