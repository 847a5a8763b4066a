"""The connection to the shared Redis: the URL, the scripts, the epoch, and whether it works.

Every Redis call of the app goes through `RedisStore.call` or `RedisStore.run`, so that a
Redis that cannot be reached is one domain error everywhere (`errors.StoreUnavailable`, HTTP
503 with a message that names the URL and what to do), and `health()` can say since when.

The *epoch* (see ``redis_scripts.py``): Redis run without persistence comes back empty after
a restart. A script that finds the epoch missing or changed refuses to write; this process
then re-creates the data set with ``seq`` moved past every seq it has seen (plus a margin for
what other servers saw and it did not), and calls its `on_new_epoch` listeners, which put
back what this process owns: its runner entry, the records of its jobs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import redis_scripts
from .errors import StoreUnavailable

#: After Redis lost its data, seq continues this far past the highest seq this process saw:
#: another server's reader may have been ahead of ours when Redis went away, and a seq must
#: never be given twice (a browser resuming "after 41" would skip the new 41).
SEQ_MARGIN = 100_000
DEFAULT_PREFIX = "ipcx:"

_SCRIPTS = {
    "publish": redis_scripts.PUBLISH,
    "put": redis_scripts.PUT,
    "replay": redis_scripts.REPLAY,
    "forget": redis_scripts.FORGET,
    "init": redis_scripts.INIT,
    "heartbeat": redis_scripts.HEARTBEAT,
    "leave": redis_scripts.LEAVE,
    "reap": redis_scripts.REAP,
}


class RedisScriptError(Exception):
    """A script refused (e.g. a runner name that is taken); the message says why."""


def redact(url: str) -> str:
    """`url` with its password replaced by ``***`` (it travels in the URL: ``redis://:pw@h``),
    so it can be printed and logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> str:
    """:raises ValueError: `url` is not a ``redis://`` / ``rediss://`` / ``unix://`` URL."""
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"the Redis URL must look like redis://HOST:PORT/DB (or rediss://, unix://), "
            f"not {redact(url)!r}"
        )
    return url


class RedisStore:
    """One Redis connection pool shared by the bus, the registry and the control routing.

    :param url: ``redis://[:password@]host:port/db``; the database separates installations.
    :param prefix: put before every key (tests and several installations in one database).
    """

    def __init__(
        self, url: str, *, prefix: str = DEFAULT_PREFIX, socket_timeout: float = 5.0
    ) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - the extra is part of the test set-up
            raise RuntimeError(
                "--redis needs the redis package: pip install 'ipc-explorer[redis]'"
            ) from None
        self._redis = redis
        self.url = check_url(url)
        self.shown_url = redact(url)
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=socket_timeout
        )
        self._scripts = {name: self.client.register_script(src) for name, src in _SCRIPTS.items()}
        self._lock = threading.Lock()  # the epoch
        self._health_lock = threading.Lock()
        self.epoch: str | None = None
        self._had_epoch = False
        #: The highest seq this process has seen numbered (for the floor after a data loss).
        self.seen = 0
        self._listeners: list[Callable[[], None]] = []
        self._ok: bool | None = None
        self._error: str | None = None
        self._since: float | None = None
        self.errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    # ---- plumbing ---------------------------------------------------------------------------

    def key(self, name: str) -> str:
        return self.prefix + name

    def on_new_epoch(self, listener: Callable[[], None]) -> None:
        """Call `listener` (no arguments) after this process adopted a new data set."""
        self._listeners.append(listener)

    def note_seen(self, seq: int) -> None:
        if seq > self.seen:
            self.seen = seq

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` (a redis-py call), with an unreachable Redis turned into
        `StoreUnavailable` and the health state kept up to date."""
        try:
            result = fn(*args, **kwargs)
        except self.errors as exc:
            self._set_down(exc)
            raise StoreUnavailable(self.unavailable_message()) from None
        self._set_up()
        return result

    def run(self, script: str, *args: Any) -> Any:
        """Run one of the scripts with ARGV = prefix, epoch, *args.

        :raises StoreUnavailable: Redis cannot be reached.
        :raises RedisScriptError: the script refused (its message says why).
        """
        for attempt in (0, 1):
            epoch = self.ensure_epoch()
            try:
                return self.call(self._scripts[script], args=[self.prefix, epoch, *args])
            except self._redis.exceptions.ResponseError as exc:
                message = str(exc)
                if message.startswith("EPOCH") and attempt == 0:
                    self._epoch_lost(epoch)
                    continue
                raise RedisScriptError(message) from None
        raise AssertionError("unreachable")

    def ensure_epoch(self) -> str:
        """The current data set's epoch: adopted, or created if Redis has none."""
        epoch = self.epoch
        if epoch is not None:
            return epoch
        with self._lock:
            if self.epoch is None:
                floor = self.seen + SEQ_MARGIN if self._had_epoch else 0
                script = self._scripts["init"]
                found = self.call(script, args=[self.prefix, uuid.uuid4().hex, floor])
                self.epoch = found.decode() if isinstance(found, bytes) else str(found)
                renewed = self._had_epoch
                self._had_epoch = True
            else:
                renewed = False
            epoch = self.epoch
        if renewed:
            for listener in list(self._listeners):
                try:
                    listener()
                except Exception as exc:  # one listener must not stop the others
                    print(f"webapp: after Redis came back: {exc!r}", flush=True)
        return epoch

    def _epoch_lost(self, epoch: str) -> None:
        with self._lock:
            if self.epoch == epoch:
                self.epoch = None

    def check_epoch(self) -> None:
        """Compare our epoch with Redis's (a reader that has been quiet calls this: a data set
        that was replaced under it would otherwise go unnoticed) and adopt a new one."""
        epoch = self.epoch
        if epoch is None:
            self.ensure_epoch()
            return
        found = self.call(self.client.get, self.key("epoch"))
        if found is None or found.decode() != epoch:
            self._epoch_lost(epoch)
            self.ensure_epoch()

    # ---- health -----------------------------------------------------------------------------

    def _set_down(self, exc: BaseException) -> None:
        with self._health_lock:
            if self._ok is not False:
                self._since = time.time()
            self._ok = False
            self._error = f"{type(exc).__name__}: {exc}"

    def _set_up(self) -> None:
        if self._ok is True:
            return
        with self._health_lock:
            if self._ok is not True:
                self._since = time.time()
            self._ok, self._error = True, None

    def unavailable_message(self) -> str:
        return (
            f"Redis at {self.shown_url} cannot be reached ({self._error}); this server shares "
            "its jobs and events through it, so the request was not done. Start Redis again "
            "(or fix the --redis URL): the server reconnects by itself."
        )

    def ping(self) -> bool:
        """True when Redis answers (and we have adopted its data set, new or not)."""
        try:
            self.check_epoch()
        except StoreUnavailable:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """``{"kind": "redis", "url", "ok", "error", "since"}`` (probed now)."""
        self.ping()
        with self._health_lock:
            return {
                "kind": "redis",
                "url": self.shown_url,
                "ok": bool(self._ok),
                "error": self._error,
                "since": self._since,
            }

    def server_time(self) -> float:
        seconds, micros = self.call(self.client.time)
        return seconds + micros / 1e6

    def close(self) -> None:
        self.client.close()
