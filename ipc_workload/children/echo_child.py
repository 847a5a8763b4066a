"""Benchmark child (Python, via ipc.fork): says "ready" at once, then echoes every message.

"ready" marks the start-to-first-message time; the echo loop serves the round-trip and
throughput runs. It ends when the parent disconnects. Plain user code: its replies to a
pipelined burst are written together by `ipc.child`'s write-behind (docs/ipc.md, "The child
side"); the floor's child, `raw_echo.py`, writes every reply on its own.
"""

from ipc import parent

parent.send("ready")
for msg in parent.messages():
    parent.send(msg)
