"""ping_pong.py — answers pings with pongs, for measuring a transport's round-trip latency.

What it demonstrates: the cost of one message each way over a transport (pipe, socketpair,
unix, tcp). The child does as little as possible per message so that what the parent measures
is the transport, not this program: it reads in the main thread (no listener thread, no queue)
and copies the ping.

Args: none.

Protocol:

* ``{"type": "ping", "n": k, ...}`` → ``{"type": "pong", "n": k, ...}``: every other field
  (a send time, a payload) comes back unchanged, so the parent can time the round trip with its
  own clock and vary the message size;
* ``{"type": "stop"}`` → the child ends (as it does when the parent disconnects);
* anything else → ``{"type": "error", "message": "..."}``, and the child carries on.
"""

from __future__ import annotations

from ipc import parent

for message in parent.messages():
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "ping":
        parent.send({**message, "type": "pong"})
    elif kind == "stop":
        break
    else:
        parent.send(
            {
                "type": "error",
                "message": f"expected {{'type': 'ping', 'n': ...}} or {{'type': 'stop'}}, "
                f"got {message!r}",
            }
        )
