"""Node's `child_process` model in Python: fork / spawn / exec / exec_file, a message channel
over pipe or socket transports that speaks Node's own IPC wire format, and the child side
(`from ipc import parent`). No dependency outside the standard library; see docs/ipc.md.
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING, Any

from .api import ExecResult, choose_transport, exec, exec_file, fork, spawn
from .errors import (
    AuthenticationError,
    BrokenChannelError,
    ChannelClosedError,
    ExecError,
    InvalidArgumentError,
    IPCError,
    MessageTooLargeError,
    ProcessTimeoutError,
    ProtocolError,
    SerializationError,
    SpawnError,
)
from .process import ChildProcess, children, shutdown, signal_name, signal_number
from .transports import AUTO, TRANSPORTS
from .wire import DEFAULT_MAX_MESSAGE_SIZE, SERIALIZATIONS

if TYPE_CHECKING:
    from .child import Parent

    parent: Parent


def __getattr__(name: str) -> Any:
    # `parent` is created on first use, so a parent process never builds a child-side object.
    if name == "parent":
        from .child import parent

        return parent
    raise AttributeError(f"module 'ipc' has no attribute {name!r}")


atexit.register(shutdown)

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
    "IPCError",
    "InvalidArgumentError",
    "MessageTooLargeError",
    "ProcessTimeoutError",
    "ProtocolError",
    "SerializationError",
    "SpawnError",
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
