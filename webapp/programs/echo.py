"""echo.py — sends back every message it gets, unchanged.

What it demonstrates: the round trip through the channel and the wire format (whatever JSON
the parent sends comes back equal: strings, numbers, nested objects, unicode).

Args: none. Protocol: any message → the same message. Ends when the parent disconnects.
"""

from __future__ import annotations

from ipc import parent

for message in parent.messages():
    parent.send(message)
