"""Control routing: an action for a job (kill, send, stdin, ...) goes to the runner that owns
its child, wherever the request arrived.

* `LocalControl`, the embedded default: this process is the only runner, so there is nowhere
  to route to;
* `RedisControl`: each runner reads its own request stream (``ctl:<runner>``, ``XREAD
  BLOCK``) and answers each request on a list of its own (``reply:<id>``) that the asking
  server waits on with ``BLPOP``: an answer within `timeout` (2 s), or a clear error. A
  runner skips a request that waited longer than that (its asker has given up: a kill must
  not land seconds after the user was told it failed).

A handler's `ApiError` travels back as status and message, so the user sees the runner's own
refusal (409 "not running", 429 at its limit, 403 from its command policy).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import ApiError, StoreUnavailable
from .redis_store import RedisStore

#: Seconds a request waits for its runner's answer.
TIMEOUT = 2.0
Handler = Callable[[str, dict[str, Any]], Any]


class Control(ABC):
    """Sends requests to other runners; answers this runner's."""

    @abstractmethod
    def call(self, runner: str, op: str, args: dict[str, Any]) -> Any:
        """Run `op` with `args` on `runner`; its result.

        :raises ApiError: the runner's own refusal; 504 when it did not answer in time.
        """

    @abstractmethod
    def serve(self, handler: Handler) -> None:
        """Answer requests for this runner with `handler(op, args)`, from now on."""

    @abstractmethod
    def close(self) -> None:
        """Stop answering."""


class LocalControl(Control):
    """No other runner exists: nothing is ever routed."""

    def call(self, runner: str, op: str, args: dict[str, Any]) -> Any:
        raise ApiError(
            404,
            f"no runner named {runner!r}: this server runs every job itself (servers and "
            "agents share runners when started with --redis)",
        )

    def serve(self, handler: Handler) -> None:
        return None

    def close(self) -> None:
        return None


class RedisControl(Control):
    """Requests over Redis: a stream per runner, a reply list per request."""

    def __init__(self, store: RedisStore, runner: str, timeout: float = TIMEOUT) -> None:
        self.store = store
        self.runner = runner
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._wake_key = store.key(f"wake:{uuid.uuid4().hex}")

    # ---- asking -----------------------------------------------------------------------------

    def call(self, runner: str, op: str, args: dict[str, Any]) -> Any:
        store, client = self.store, self.store.client
        request_id = uuid.uuid4().hex
        request = json.dumps({"id": request_id, "op": op, "args": args})
        store.call(
            client.xadd, store.key(f"ctl:{runner}"), {"r": request}, maxlen=1000, approximate=True
        )
        reply = store.call(client.blpop, [store.key(f"reply:{request_id}")], timeout=self.timeout)
        if reply is None:
            raise ApiError(
                504,
                f"runner {runner!r} did not answer within {self.timeout:g} s (it may be "
                "overloaded or just gone: GET /api/hosts shows its last heartbeat); "
                "try again",
            )
        answer = json.loads(reply[1])
        if "error" in answer:
            raise ApiError(answer.get("status", 500), answer["error"], **answer.get("extra", {}))
        return answer.get("result")

    # ---- answering --------------------------------------------------------------------------

    def serve(self, handler: Handler) -> None:
        store, key = self.store, self.store.key(f"ctl:{self.runner}")
        last = store.call(store.client.xrevrange, key, count=1)
        cursor = last[0][0].decode() if last else "0-0"  # requests from before are not ours
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="control")
        self._thread = threading.Thread(
            target=self._serve, args=(handler, key, cursor), name="control", daemon=True
        )
        self._thread.start()

    def _serve(self, handler: Handler, key: str, cursor: str) -> None:
        store = self.store
        offset = 0.0  # Redis's clock minus ours: a request's age is measured on Redis's
        while not self._stop.is_set():
            try:
                offset = store.server_time() - time.time()
                reply = store.call(
                    store.client.xread, {key: cursor, self._wake_key: "0-0"}, block=1000
                )
            except StoreUnavailable:
                self._stop.wait(0.5)
                continue
            streams = dict(reply or [])
            if self._wake_key.encode() in streams:
                return
            for entry_id, fields in streams.get(key.encode(), ()):
                cursor = entry_id.decode()
                age = time.time() + offset - int(cursor.split("-")[0]) / 1000
                request = json.loads(fields[b"r"])
                if age > self.timeout:
                    continue  # its asker has given up
                assert self._pool is not None
                self._pool.submit(self._answer, handler, request)

    def _answer(self, handler: Handler, request: dict[str, Any]) -> None:
        try:
            answer: dict[str, Any] = {"result": handler(request["op"], request["args"])}
        except ApiError as exc:
            answer = {"status": exc.status, "error": exc.message, "extra": exc.extra}
        except Exception as exc:  # a bug of ours: the asker gets a 500, not a timeout
            answer = {"status": 500, "error": f"runner error ({type(exc).__name__}: {exc})"}
        key = self.store.key(f"reply:{request['id']}")
        pipe = self.store.client.pipeline(transaction=True)
        pipe.rpush(key, json.dumps(answer, default=str))
        pipe.expire(key, 30)
        try:
            self.store.call(pipe.execute)
        except StoreUnavailable:
            pass  # the asker gets its timeout

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            try:
                self.store.call(self.store.client.xadd, self._wake_key, {"stop": 1})
            except StoreUnavailable:
                pass
            self._thread.join(5)
            try:
                self.store.call(self.store.client.delete, self._wake_key)
            except StoreUnavailable:
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
