"""The frame inspector's captures: the raw bytes of a fork job's channel, cut where each read()
and write() cut them, and the frames (messages) those bytes carry.

A capture is opt-in and bounded: it starts when asked (``POST /api/jobs/<id>/frames``), puts an
`ipc` channel tap on the job's channel (``ChildProcess.set_channel_tap``, free when off), and
ends when asked, when it is full, or when the channel closes. It is full at whichever comes
first: ``max_bytes`` bytes kept, `MAX_CHUNKS` reads and writes kept, or `MAX_FRAMES` frames
ended (it then stops keeping and says which). The bytes alone do not bound it: each read() is a
record of its own (about 170 bytes here), and a snapshot lists each chunk and each frame (about
1 KB each while it is built), so 2-byte reads made one 1 MiB capture hold 88 MiB and its
snapshot never finish. With the counts capped, a capture holds at most `held_bound(max_bytes)`
(1.8 MiB at `MAX_LIMIT`) and one snapshot builds at most `SNAPSHOT_BOUND` (both measured by
tests/web/test_frames.py). At most `KEEP` captures are kept, so all of them hold at most
``KEEP * held_bound(MAX_LIMIT)``, 36 MiB; the oldest is stopped, its tap taken off, and
forgotten first.

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
#: Reads and writes one capture keeps (each is a record of its own, listed in a snapshot).
MAX_CHUNKS: Final = 4096
#: Frames that may end in one capture's bytes (each is listed, decoded, in a snapshot).
MAX_FRAMES: Final = 4096
#: What one chunk's record costs beside its bytes (a `Chunk`, its time, its number and its
#: bytes object, measured at about 170 bytes on CPython 3.11+; tests/web/test_frames.py).
CHUNK_RECORD_BYTES: Final = 200
#: Peak memory of one snapshot (GET /frames) of a full capture, its JSON text included:
#: about 16 MiB measured in the worst case (every limit reached at once; test_frames.py).
SNAPSHOT_BOUND: Final = 32 * 1024 * 1024
#: Captures kept (the oldest is stopped and forgotten first).
KEEP: Final = 20
_BINARY_HEADER = struct.Struct(">IB")


def held_bound(limit: int) -> int:
    """The most a capture of `limit` bytes holds: its bytes and its chunks' records."""
    return limit + MAX_CHUNKS * CHUNK_RECORD_BYTES


@dataclass(slots=True)
class Chunk:
    """What one read() or write() moved (direction ``read`` = child → server)."""

    n: int
    direction: str  # read | write | eof
    t: float
    data: bytes
    cut: bool = False  # only the start of it was kept (the capture was full)


class _FrameEnds:
    """Counts the frames that end in one direction's bytes as they are kept, so a capture
    stops at `MAX_FRAMES` without cutting its stream into frames on every read."""

    def __init__(self, serialization: str) -> None:
        self.binary = serialization == "binary"
        self._header = bytearray()  # binary: the current frame's header, so far
        self._left = 0  # binary: bytes of the current frame's body still to come

    def keep(self, data: bytes, room: int) -> tuple[int, int]:
        """(frames ending in the kept part, bytes kept): all of `data`, or its start up to
        the end of its `room`-th frame when more frames end in it."""
        if self.binary:
            return self._keep_binary(data, room)
        ends, pos = 0, 0
        while True:
            newline = data.find(b"\n", pos)
            if newline < 0:
                return ends, len(data)
            if ends == room:
                return ends, pos
            ends, pos = ends + 1, newline + 1

    def _keep_binary(self, data: bytes, room: int) -> tuple[int, int]:
        ends, pos = 0, 0
        while pos < len(data):
            if self._left:
                step = min(self._left, len(data) - pos)
                self._left -= step
                pos += step
                if not self._left:
                    ends += 1
                continue
            if ends == room:  # a new frame starts here: not kept
                return ends, pos
            take = data[pos : pos + _BINARY_HEADER.size - len(self._header)]
            self._header += take
            pos += len(take)
            if len(self._header) == _BINARY_HEADER.size:
                self._left, _kind = _BINARY_HEADER.unpack(self._header)
                self._header.clear()
                if not self._left:
                    ends += 1
        return ends, pos


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
    frames_ended: int = 0  # frames that end in the bytes kept
    full: bool = False
    #: Why it is full, in words (the byte limit, MAX_CHUNKS or MAX_FRAMES); None until then.
    full_reason: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ends: dict[str, _FrameEnds] = field(default_factory=dict, repr=False)

    def __call__(self, direction: str, data: bytes) -> None:
        with self.lock:
            self.seen += len(data)
            if self.full or self.stopped_at is not None:
                return
            size = len(data)
            data = data[: self.limit - self.kept]
            if len(data) < size:
                self._fill(f"max_bytes: {self.limit} bytes kept")
            if direction in ("read", "write"):
                ends = self._ends.get(direction)
                if ends is None:
                    ends = self._ends[direction] = _FrameEnds(self.serialization)
                ended, keep = ends.keep(data, MAX_FRAMES - self.frames_ended)
                self.frames_ended += ended
                if keep < len(data):
                    data = data[:keep]
                    self._fill(f"frames.MAX_FRAMES: {MAX_FRAMES} frames kept")
            n = len(self.chunks) + 1
            self.chunks.append(Chunk(n, direction, time.time(), data, len(data) < size))
            self.kept += len(data)
            if n == MAX_CHUNKS:
                self._fill(f"frames.MAX_CHUNKS: {MAX_CHUNKS} reads and writes kept")

    def _fill(self, reason: str) -> None:
        """It keeps nothing more (under `lock`)."""
        if not self.full:
            self.full, self.full_reason = True, reason

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
                "full_reason": self.full_reason,
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
    (reads or writes) it spans, and its decoded message (or why it cannot be decoded).

    Frames and chunks both follow the stream in order, so one sweep pairs them: each frame's
    chunks start at the first one that ends after the frame starts (linear, where testing
    every chunk against every frame took seconds for a few thousand 2-byte reads).
    """
    mine = [c for c in chunks if c.direction == direction]
    stream = b"".join(c.data for c in mine)
    bounds = []  # (start, end, chunk n) per chunk, in stream order
    offset = 0
    for c in mine:
        bounds.append((offset, offset + len(c.data), c.n))
        offset += len(c.data)
    frames = []
    first = 0  # the first chunk that may hold the next frame
    for start, end, complete in _frame_spans(stream, serialization):
        raw = stream[start:end]
        while first < len(bounds) and bounds[first][1] <= start:
            first += 1
        spans = []
        i = first
        while i < len(bounds) and bounds[i][0] < end:
            if bounds[i][1] > start:  # (an empty chunk at the frame's start is not in it)
                spans.append(bounds[i][2])
            i += 1
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
    """The app's captures, by job id (at most `keep`; the oldest is stopped and forgotten).

    Taps are put on and taken off under one lock, with the capture they belong to, so a tap is
    never taken off on behalf of a capture that is no longer its job's.
    """

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        #: job id -> (its capture, the child whose channel it taps)
        self._captures: OrderedDict[str, tuple[Capture, Any]] = OrderedDict()

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
        with self._lock:
            if not child.set_channel_tap(capture):  # replaces the job's previous tap, if any
                raise ApiError(409, f"job {job.id}'s channel closed just now; nothing to record")
            replaced = self._captures.pop(job.id, None)
            ended = [replaced[0]] if replaced is not None else []
            self._captures[job.id] = (capture, child)
            while len(self._captures) > self.keep:
                old, old_child = self._captures.popitem(last=False)[1]
                _untap(old_child)  # forgotten: it must not stay on that channel
                ended.append(old)
        for old in ended:
            old.stop()
        return capture

    def get(self, job_id: str) -> Capture:
        with self._lock:
            kept = self._captures.get(job_id)
        if kept is None:
            raise ApiError(
                404,
                f"no channel capture for job {job_id}; start one with "
                f"POST /api/jobs/{job_id}/frames",
            )
        return kept[0]

    def stop(self, job: Any) -> Capture:
        """Turn the tap off (the bytes kept so far stay)."""
        capture = self.get(job.id)
        capture.stop()
        self.release(job, capture)
        return capture

    def release(self, job: Any, capture: Capture) -> None:
        """Take the tap off a job whose capture has ended (full or stopped)."""
        with self._lock:
            kept = self._captures.get(job.id)
            if kept is not None and kept[0] is capture:
                _untap(kept[1])


def _untap(child: Any) -> None:
    if child.connected:
        child.set_channel_tap(None)
