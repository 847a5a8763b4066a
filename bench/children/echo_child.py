"""Benchmark child (Python, via ipc.fork): says "ready" at once, then echoes every message.

"ready" marks the start-to-first-message time; the echo loop serves the round-trip and
throughput runs. It ends when the parent disconnects.
"""

from ipc import parent

parent.send("ready")
for msg in parent.messages():
    parent.send(msg)
