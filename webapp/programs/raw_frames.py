"""raw_frames.py — writes Node's wire format by hand, in odd pieces, to show read() boundaries.

What it demonstrates: a message channel is a byte stream. The parent reads whatever the kernel
has (one read() may hold several frames, or part of one) and its decoder cuts frames at each
newline. This child uses no library for its channel: it writes the bytes itself, so the frame
inspector can show a frame split across two reads and several frames in one read.

Args: none. It writes nothing until told. Protocol (JSON lines, as Node's ``process.send``):

* ``{"type": "burst", "count": N}`` → N frames ``{"n": 1}``, ... in ONE write() (N <= 100):
  the parent reads them in one read();
* ``{"type": "split"}`` → the first half of a frame now, the rest only after the next message
  (whatever it is): that frame crosses two reads, whatever the timing;
* ``{"type": "big", "bytes": N}`` → one frame of about N bytes (N <= 1 MiB) in one write():
  more than one read (the parent reads 64 KiB at a time);
* anything else → echoed back.

It ends when the parent disconnects.
"""

from __future__ import annotations

import json
import os

from ipc.transports import connect_from_child


def open_channel() -> tuple[int, int]:
    """The channel's (read fd, write fd), from the variables the parent set."""
    if "NODE_CHANNEL_FD" in os.environ:
        fd = int(os.environ["NODE_CHANNEL_FD"])
        return fd, fd
    address = os.environ["IPC_EXPLORER_CHANNEL"]
    if address.startswith("pipe:"):
        read_fd, write_fd = (int(n) for n in address[len("pipe:") :].split(","))
        return read_fd, write_fd
    sock = connect_from_child(address, os.environ["IPC_EXPLORER_SECRET"])
    fd = sock.detach()
    return fd, fd


def frame(message: object) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def messages(fd: int):
    """Each JSON line the parent sends, until it closes the channel."""
    buffer = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


def main() -> None:
    read_fd, write_fd = open_channel()
    pending = b""  # the second half of a split frame, written at the next message
    for message in messages(read_fd):
        if pending:
            write_all(write_fd, pending)
            pending = b""
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "burst":
            count = max(1, min(100, int(message.get("count", 3))))
            write_all(write_fd, b"".join(frame({"n": n}) for n in range(1, count + 1)))
        elif kind == "split":
            whole = frame({"type": "split", "text": "this frame crosses two reads"})
            half = len(whole) // 2
            write_all(write_fd, whole[:half])
            pending = whole[half:]
        elif kind == "big":
            size = max(1, min(1 << 20, int(message.get("bytes", 200_000))))
            write_all(write_fd, frame({"type": "big", "text": "x" * size}))
        else:
            write_all(write_fd, frame(message))


if __name__ == "__main__":
    main()
