"""Start-up/memory child (Python): says "ready" at once and stays alive until disconnected."""

from ipc import parent

parent.send("ready")
for _msg in parent.messages():
    pass
