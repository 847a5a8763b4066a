"""A tap on the parent's end of a channel: every read() and write() it makes, as it makes them.

What the explorer's frame inspector shows (the raw bytes beside the decoded messages, each
read() boundary marked) is only known here, where the bytes are moved. A tap is one callback,
``tap(direction, data)``, with ``direction`` ``"read"`` (``data`` is what one read() returned),
``"write"`` (what one write() or writev() took) or ``"eof"`` (the read that saw end of stream,
``data`` empty). It runs on the thread that moved the bytes (the reactor for reads; the sender's
thread or the reactor for writes, with the port's lock held), so it must be quick and must not
call back into the channel.

Off by default, and free when off: `MessagePort.set_tap` puts a `TappedChannel` in place of the
port's channel while a tap is on and puts the channel itself back when it is turned off, so the
untapped read and write paths run exactly the code they run without this module.
"""

from __future__ import annotations

import logging

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Tap = Callable[[str, bytes], None]  # (direction, data)

log = logging.getLogger("ipc")


class TappedChannel:
    """A channel that reports the bytes of each read and write to `tap`; everything else is the
    wrapped channel's (`inner`)."""

    def __init__(self, inner: Any, tap: Tap) -> None:
        self.inner = inner
        self._tap = tap

    def report(self, direction: str, data: bytes) -> None:
        try:
            self._tap(direction, data)
        except Exception:  # an observer's bug must not break the channel it watches
            log.exception("channel tap failed on %s of %d bytes", direction, len(data))

    def recv_bytes(self) -> bytes | None:
        data = self.inner.recv_bytes()
        if data is not None:
            self.report("read" if data else "eof", data)
        return data

    def send_bytes(self, data: bytes | memoryview) -> int:
        sent = self.inner.send_bytes(data)
        if sent:
            self.report("write", bytes(data[:sent]))
        return sent

    def send_many(self, buffers: list[memoryview]) -> int:
        sent = self.inner.send_many(buffers)
        if sent:
            self.report("write", b"".join(buffers)[:sent])
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
