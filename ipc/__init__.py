"""Node's `child_process` model in Python: fork / spawn / exec / exec_file, a message channel
over pipe or socket transports that speaks Node's own IPC wire format, and the child side
(`from ipc import parent`). No dependency outside the standard library; see docs/ipc.md.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # `typing` would cost every child start-up time
if TYPE_CHECKING:
    from typing import Any

    from .api import ExecResult, choose_transport, exec, exec_file, fork, spawn
    from .child import Parent
    from .errors import (
        AuthenticationError,
        BrokenChannelError,
        ChannelClosedError,
        ExecError,
        HandleError,
        InvalidArgumentError,
        IPCError,
        MessageTooLargeError,
        ModuleNotFoundForkError,
        ProcessTimeoutError,
        ProtocolError,
        SerializationError,
        SpawnError,
    )
    from .process import ChildProcess, children, shutdown
    from .reactor import TimerHandle, call_later, call_soon
    from .signals import signal_name, signal_number
    from .states import State
    from .transports import AUTO, TRANSPORTS
    from .wire import DEFAULT_MAX_MESSAGE_SIZE, SERIALIZATIONS

    parent: Parent

# Names are imported on first use: a child doing `from ipc import parent` loads only the child
# side (start-up time matters: it is on every fork's path), a parent never builds `parent`.
_HOME = {
    "ExecResult": "api",
    "choose_transport": "api",
    "exec": "api",
    "exec_file": "api",
    "fork": "api",
    "spawn": "api",
    "parent": "child",
    "ChildProcess": "process",
    "children": "process",
    "shutdown": "process",
    "signal_name": "signals",
    "signal_number": "signals",
    "State": "states",
    "call_soon": "reactor",
    "call_later": "reactor",
    "TimerHandle": "reactor",
    "AUTO": "transports",
    "TRANSPORTS": "transports",
    "DEFAULT_MAX_MESSAGE_SIZE": "wire",
    "SERIALIZATIONS": "wire",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name) or ("errors" if name.endswith("Error") else None)
    if module is None:
        raise AttributeError(f"module 'ipc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AUTO",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "SERIALIZATIONS",
    "TRANSPORTS",
    "AuthenticationError",
    "BrokenChannelError",
    "ChannelClosedError",
    "ChildProcess",
    "ExecError",
    "ExecResult",
    "HandleError",
    "IPCError",
    "InvalidArgumentError",
    "MessageTooLargeError",
    "ModuleNotFoundForkError",
    "ProcessTimeoutError",
    "ProtocolError",
    "SerializationError",
    "SpawnError",
    "State",
    "TimerHandle",
    "call_later",
    "call_soon",
    "children",
    "choose_transport",
    "exec",
    "exec_file",
    "fork",
    "parent",
    "shutdown",
    "signal_name",
    "signal_number",
    "spawn",
]
