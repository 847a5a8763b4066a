"""Real servers for tests: `LiveServer` (gunicorn, the way users run it) and `ThreadServer`
(Werkzeug's server in a thread of the test process, for fast tests that also want to look
inside the app).

Both are context managers exposing ``base_url``, ``token``, ``ws_url``, ``url(path)``,
``headers`` and ``pid``::

    from server import LiveServer
    with LiveServer() as srv:
        requests.get(srv.url("/api/jobs"), headers=srv.headers)

`LiveServer` starts ``python -m webapp --host 127.0.0.1 --port <free> --token <random>`` in its
own process group, waits for the printed URL, and on exit sends SIGTERM and waits (KILL to the
whole group if it overstays).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ipc import wire

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Base:
    host = "127.0.0.1"
    port: int
    token: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The feed's URL with the token in the query (no cookie needed)."""
        return f"ws://{self.host}:{self.port}/ws?token={self.token}"

    @property
    def origin(self) -> str:
        return self.base_url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: bool = True,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """A plain urllib request: (status, headers, body). No redirects are followed."""
        all_headers = dict(self.headers if token else {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=all_headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, dict(err.headers), err.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _headers, data = self.request(method, path, body, **kw)
        return status, (wire.loads(data.decode()) if data else None)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class LiveServer(_Base):
    """The real thing: ``python -m webapp`` under gunicorn, as a subprocess.

    :param args: extra command-line options, e.g. ``["--max-children", "2"]``.
    :param env: extra environment variables for the server.
    :param stop_timeout: seconds to wait after SIGTERM before KILLing the group.
    """

    def __init__(
        self,
        args: list[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        stop_timeout: float = 20.0,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.port = free_port()
        self.token = secrets.token_urlsafe(16)
        self.args = list(args or [])
        self.env = env
        self.stop_timeout = stop_timeout
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.printed_url: str | None = None
        self.output: list[str] = []
        self.returncode: int | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env or {})
        cmd = [
            sys.executable,
            "-m",
            "webapp",
            "--host",
            self.host,
            "--port",
            str(self.port),
            f"--token={self.token}",  # one argument: a token may start with "-"
            *self.args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            process_group=0,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the server did not start (exit {self.proc.returncode}):\n"
                    + "".join(self.output[-50:])
                )
        # The URL is printed once the port listens (gunicorn's when_ready, before the worker
        # exists): wait until the worker answers, so `pid`'s worker and the app are there.
        while True:
            try:
                if self.request("GET", "/api/status", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the server printed its URL but does not answer:\n" + self.log())
            time.sleep(0.05)

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "IPC Explorer running at " in line and not self._ready.is_set():
                self.printed_url = line.split("running at ", 1)[1].strip()
                self._ready.set()
        self.proc.stdout.close()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Send `sig` to the server; wait; KILL its group if it overstays. Returns the exit
        status (None if it had to be killed)."""
        proc = self.proc
        if proc is None or self.returncode is not None:
            return self.returncode
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.returncode = proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
            self.returncode = None
        if self._reader is not None:
            self._reader.join(10)
        return self.returncode

    def log(self) -> str:
        return "".join(self.output)


class ThreadServer(_Base):
    """The app on Werkzeug's threaded server in a thread of this process (fast start; the
    test can reach `app` and its services directly).

    :param config: settings for `create_app`.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        from werkzeug.serving import make_server

        from webapp import create_app

        self.token = secrets.token_urlsafe(16)
        self.app = create_app({"TOKEN": self.token, **(config or {})})
        self._server = make_server(self.host, 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def services(self) -> Any:
        from webapp.services import EXTENSION

        return self.app.extensions[EXTENSION]

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        from webapp import shutdown_app

        shutdown_app(self.app, grace=2.0)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
