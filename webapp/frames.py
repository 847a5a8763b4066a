"""The frame inspector's captures: the raw bytes of a fork job's channel, cut where each read()
and write() cut them, and the frames (messages) those bytes carry.

A capture is opt-in and bounded: it starts when asked (``POST /api/jobs/<id>/frames``), puts an
`ipc` channel tap on the job's channel (``ChildProcess.set_channel_tap``, free when off), keeps
at most ``max_bytes`` bytes (then it stops keeping and says it is full), and ends when asked,
when it is full, or when the channel closes. At most `KEEP` captures are kept.

`cut_frames` finds the frames in each direction's stream with the channel's own framing (Node's
JSON lines: a frame ends at each newline; ``binary``: a 5-byte header with the length), so the
page can mark which read() holds which frame: one frame split across two reads, or three
frames in one read, is what a byte stream does.
"""

from __future__ import annotations

import base64
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from ipc import wire

from . import jsontext
from .errors import ApiError

DEFAULT_LIMIT: Final = 16 * 1024
MAX_LIMIT: Final = 1024 * 1024
#: Captures kept (the oldest is dropped first): with MAX_LIMIT, at most 20 MiB.
KEEP: Final = 20
_BINARY_HEADER = struct.Struct(">IB")


@dataclass
class Chunk:
    """What one read() or write() moved (direction ``read`` = child → server)."""

    n: int
    direction: str  # read | write | eof
    t: float
    data: bytes
    cut: bool = False  # only the start of it was kept (the capture was full)


@dataclass
class Capture:
    """The bytes of one job's channel; called by the tap from the reactor or a sender thread."""

    job: str
    serialization: str
    limit: int
    started_at: float = field(default_factory=time.time)
    stopped_at: float | None = None
    chunks: list[Chunk] = field(default_factory=list)
    kept: int = 0
    seen: int = 0  # every byte the tap saw, kept or not
    full: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, direction: str, data: bytes) -> None:
        with self.lock:
            self.seen += len(data)
            if self.full or self.stopped_at is not None:
                return
            room = self.limit - self.kept
            cut = len(data) > room
            if cut:
                data = data[:room]
                self.full = True
            self.chunks.append(Chunk(len(self.chunks) + 1, direction, time.time(), data, cut))
            self.kept += len(data)

    def stop(self) -> None:
        with self.lock:
            if self.stopped_at is None:
                self.stopped_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            chunks = list(self.chunks)
            state = {
                "job": self.job,
                "serialization": self.serialization,
                "limit": self.limit,
                "kept_bytes": self.kept,
                "seen_bytes": self.seen,
                "full": self.full,
                "capturing": self.stopped_at is None and not self.full,
                "started_at": self.started_at,
                "stopped_at": self.stopped_at,
            }
        offsets: dict[str, int] = {"read": 0, "write": 0}
        listed = []
        for chunk in chunks:
            start = offsets.get(chunk.direction, 0)
            offsets[chunk.direction] = start + len(chunk.data)
            listed.append(
                {
                    "n": chunk.n,
                    "direction": chunk.direction,
                    "t": chunk.t,
                    "size": len(chunk.data),
                    "start": start,  # offset in its direction's stream
                    "cut": chunk.cut,
                    "data": base64.b64encode(chunk.data).decode(),
                }
            )
        frames = cut_frames(chunks, "write", self.serialization)
        frames += cut_frames(chunks, "read", self.serialization)
        return {**state, "chunks": listed, "frames": frames}


def cut_frames(chunks: list[Chunk], direction: str, serialization: str) -> list[dict[str, Any]]:
    """The frames in one direction's bytes, each with its offsets in that stream, the chunks
    (reads or writes) it spans, and its decoded message (or why it cannot be decoded)."""
    mine = [c for c in chunks if c.direction == direction]
    stream = b"".join(c.data for c in mine)
    bounds = []  # (start, end, chunk n) per chunk
    offset = 0
    for c in mine:
        bounds.append((offset, offset + len(c.data), c.n))
        offset += len(c.data)
    frames = []
    for start, end, complete in _frame_spans(stream, serialization):
        raw = stream[start:end]
        spans = [n for a, b, n in bounds if a < end and b > start]
        entry: dict[str, Any] = {
            "direction": direction,
            "index": len(frames) + 1,
            "start": start,
            "end": end,
            "size": end - start,
            "chunks": spans,
            "complete": complete,
        }
        entry.update(_decode(raw, serialization, complete, first=start == 0))
        frames.append(entry)
    return frames


def _frame_spans(stream: bytes, serialization: str) -> list[tuple[int, int, bool]]:
    """(start, end, complete) of each frame in `stream`; the last may be incomplete."""
    spans = []
    start = 0
    if serialization == "binary":
        while start < len(stream):
            if len(stream) - start < _BINARY_HEADER.size:
                spans.append((start, len(stream), False))
                break
            length, _kind = _BINARY_HEADER.unpack_from(stream, start)
            end = start + _BINARY_HEADER.size + length
            spans.append((start, min(end, len(stream)), end <= len(stream)))
            start = end
        return spans
    while start < len(stream):
        newline = stream.find(b"\n", start)
        if newline < 0:
            spans.append((start, len(stream), False))
            break
        spans.append((start, newline + 1, True))
        start = newline + 1
    return spans


def _decode(raw: bytes, serialization: str, complete: bool, first: bool) -> dict[str, Any]:
    if not complete:
        return {"message": None, "note": "incomplete: the rest had not crossed yet"}
    try:
        if serialization == "binary":
            kind = raw[4:5]
            payload = raw[_BINARY_HEADER.size :]
            if kind == b"B":
                return {"message": None, "note": f"{len(payload)} raw bytes (binary payload)"}
            message = wire.loads(payload.decode())
        else:
            message = wire.loads(raw.decode())
    except ValueError as exc:  # UnicodeDecodeError too
        note = f"not a JSON document ({exc})"
        if first:
            note = "the capture started inside this frame: " + note
        return {"message": None, "note": note}
    # The decoded value as JSON text in its own key order (the API's JSON sorts keys).
    text = jsontext.dumps(message)
    if wire.is_internal(message):
        note = "Node's internal message (not delivered to you)"
        return {"message": message, "message_text": text, "note": note}
    return {"message": message, "message_text": text}


class FrameCaptures:
    """The app's captures, by job id (bounded by `KEEP`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._captures: OrderedDict[str, Capture] = OrderedDict()

    def start(self, job: Any, limit: int) -> Capture:
        """Tap `job`'s channel. :raises ApiError: 409 for a job without a connected channel."""
        child = job.child
        if job.spec.kind != "fork":
            raise ApiError(
                409, f"job {job.id} is a {job.spec.kind} job; only fork jobs have a channel"
            )
        if child is None or not job.live or not child.connected:
            raise ApiError(
                409,
                f"job {job.id}'s channel is closed (state {job.state}); start a fork job "
                "and record while it runs",
            )
        # The app's fork jobs speak Node's JSON lines (JobSpec has no serialization option).
        capture = Capture(job.id, "json", limit)
        if not child.set_channel_tap(capture):
            raise ApiError(409, f"job {job.id}'s channel closed just now; nothing to record")
        with self._lock:
            old = self._captures.pop(job.id, None)
            self._captures[job.id] = capture
            while len(self._captures) > KEEP:
                self._captures.popitem(last=False)
        if old is not None:
            old.stop()
        return capture

    def get(self, job_id: str) -> Capture:
        with self._lock:
            capture = self._captures.get(job_id)
        if capture is None:
            raise ApiError(
                404,
                f"no channel capture for job {job_id}; start one with "
                f"POST /api/jobs/{job_id}/frames",
            )
        return capture

    def stop(self, job: Any) -> Capture:
        """Turn the tap off (the bytes kept so far stay)."""
        capture = self.get(job.id)
        capture.stop()
        self.release(job, capture)
        return capture

    def release(self, job: Any, capture: Capture) -> None:
        """Take the tap off a job whose capture has ended (full or stopped)."""
        child = job.child
        if child is not None and child.connected:
            child.set_channel_tap(None)
