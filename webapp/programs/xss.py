"""xss.py — output that a careless page would run or choke on.

What it demonstrates: that a console shows a child's output as text. A ``<script>`` printed by
a child must appear as those characters, never run, and bytes that are not valid UTF-8 must
show as replacement marks (U+FFFD) instead of breaking the feed.

Args: none. Output: on stdout ``<script>alert(1)</script>`` then a line with invalid UTF-8
(``\\xff\\xfe``, a lone ``\\xc3``, a truncated 3-byte sequence); on stderr an
``<img onerror>`` line with an invalid byte. When forked it also sends
``{"type": "html", "text": "<script>alert(3)</script>"}`` (a message payload must be escaped
too). Exits 0.
"""

from __future__ import annotations

import sys

from ipc import parent

SCRIPT = b"<script>alert(1)</script>\n"
INVALID_UTF8 = b"invalid UTF-8: \xff\xfe | \xc3( | \xe2\x82 | end\n"

sys.stdout.buffer.write(SCRIPT + INVALID_UTF8)
sys.stdout.buffer.flush()
sys.stderr.buffer.write(b"<img src=x onerror=alert(2)> on stderr \xff\n")
sys.stderr.buffer.flush()
if parent.connected:
    parent.send({"type": "html", "text": "<script>alert(3)</script>"})
