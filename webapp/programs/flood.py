"""flood.py — writes a lot of stdout, fast, then ends by itself.

What it demonstrates: back pressure and bounded buffers. The parent (and the browser behind
it) must keep up with, coalesce or drop output without growing memory without bound or
freezing a page.

Args: ``[TOTAL_BYTES] [LINE_SIZE]`` (defaults 10000000 and 100; TOTAL at most 1 GiB,
LINE_SIZE 2..1 MiB). Exactly TOTAL_BYTES bytes go to stdout, as lines of LINE_SIZE bytes
(newline included) numbered from 1: ``1 xxxx...\\n``, ``2 xxxx...\\n``; the last line is cut
short if TOTAL_BYTES is not a multiple of LINE_SIZE.

Protocol: when forked, after the last byte is written it sends
``{"type": "done", "bytes": TOTAL_BYTES, "lines": N}``. Messages to it are ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from ipc import parent

BATCH = 64 * 1024


def lines(total: int, size: int) -> Iterator[bytes]:
    """Yield the output in batches of about BATCH bytes, exactly `total` bytes in all."""
    filler = b"x" * size
    written, n, batch = 0, 0, []
    batch_size = 0
    while written < total:
        n += 1
        head = b"%d " % n
        line = (head + filler)[: size - 1] + b"\n"
        line = line[: total - written]
        batch.append(line)
        batch_size += len(line)
        written += len(line)
        if batch_size >= BATCH:
            yield b"".join(batch)
            batch, batch_size = [], 0
    if batch:
        yield b"".join(batch)


def main(argv: list[str]) -> int:
    try:
        total = int(argv[0]) if argv else 10_000_000
        size = int(argv[1]) if len(argv) > 1 else 100
    except ValueError:
        total = size = -1
    if not (0 <= total <= 1 << 30 and 2 <= size <= 1 << 20) or len(argv) > 2:
        print("usage: flood.py [TOTAL_BYTES (0..1 GiB)] [LINE_SIZE (2..1 MiB)]", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    try:
        for chunk in lines(total, size):
            out.write(chunk)
        out.flush()
    except BrokenPipeError:
        return 0  # the reader went away: nothing more to do
    if parent.connected:
        parent.send({"type": "done", "bytes": total, "lines": -(-total // size)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
