"""The floor's child: JSON lines over an inherited socketpair fd, plain blocking I/O.

The fd comes from argv[1], or from NODE_CHANNEL_FD when `ipc.fork` starts it (the benchmark's
"ipc parent + raw child" row, which isolates the parent side's cost).

No library, no threads: read a line, decode, encode, write. Anything `ipc` adds on top of
this (reactor, events, framing checks) shows up as the distance to this floor.
"""

import json
import os
import socket
import sys

encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
fd = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["NODE_CHANNEL_FD"])
sock = socket.socket(fileno=fd)
reader = sock.makefile("rb")
sock.sendall(b'"ready"\n')
for line in reader:
    sock.sendall(encoder.encode(json.loads(line)).encode() + b"\n")
reader.close()
sock.close()
