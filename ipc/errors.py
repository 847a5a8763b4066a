"""One error hierarchy for the whole library.

The types tell apart what the caller needs to react to differently: a channel *we* closed
(`ChannelClosedError`) from a peer that went away (`BrokenChannelError`) from bytes that were
not a valid frame (`ProtocolError`). Every error has `to_dict()` so it can travel to a browser
as JSON without the caller knowing its attributes.
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False  # `typing` would cost every child start-up time; annotations only
if TYPE_CHECKING:
    from typing import Any


class IPCError(Exception):
    """Base class of every error raised or emitted by `ipc`."""

    #: A short machine-readable code, like Node's `err.code`.
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "message": str(self), "code": self.code}


class InvalidArgumentError(IPCError, ValueError):
    """An option had a value the library cannot use (unknown signal, transport, ...)."""

    code = "ERR_INVALID_ARG_VALUE"


class ChannelClosedError(IPCError):
    """The message channel was closed on our side (`disconnect()`), so it cannot be used."""

    code = "ERR_IPC_CHANNEL_CLOSED"


class BrokenChannelError(IPCError):
    """The peer closed the channel or went away while we were using it."""

    code = "EPIPE"


class SerializationError(IPCError, TypeError):
    """A message cannot be encoded (not JSON-serialisable, NaN, bytes with JSON framing)."""

    code = "ERR_IPC_SERIALIZATION"


class ProtocolError(IPCError):
    """Bytes on the channel were not a valid frame. `data` holds the first bytes seen."""

    code = "ERR_IPC_PROTOCOL"
    #: How many bytes of the offending input are kept for the report.
    SAMPLE = 64

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = bytes(data[: self.SAMPLE])
        #: Messages decoded from the same input before the bad frame (delivered first).
        self.messages: list[Any] = []

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "data": self.data.decode("utf-8", "replace")}


class MessageTooLargeError(ProtocolError):
    """A message is larger than the channel's `max_message_size`."""

    code = "ERR_IPC_MESSAGE_TOO_LARGE"

    def __init__(self, message: str, data: bytes = b"", *, size: int = 0, limit: int = 0) -> None:
        super().__init__(message, data)
        self.size = size
        self.limit = limit

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "size": self.size, "limit": self.limit}


class HandleError(IPCError):
    """A handle (socket) sent with a message did not get across: it was of a kind we do not
    take (Node's ``dgram.Socket``), no fd came with it, or the peer refused it again and again.
    `payload` holds the message that came with it, so that is not lost; `handle_type` is
    Node's name for the handle (``"dgram.Socket"``, ...)."""

    code = "ERR_IPC_HANDLE"

    def __init__(
        self, message: str, *, handle_type: str | None = None, payload: Any = None
    ) -> None:
        super().__init__(message)
        self.handle_type = handle_type
        self.payload = payload

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "handle_type": self.handle_type, "payload": self.payload}


class AuthenticationError(IPCError):
    """A peer connected to a unix/tcp channel without the one-time secret we gave our child."""

    code = "ERR_IPC_AUTH"


class SpawnError(IPCError):
    """A child could not be started. `code` is the errno name, like Node's (`"ENOENT"`)."""

    def __init__(self, message: str, *, code: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code or "ERR_SPAWN"
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "path": self.path}


class ModuleNotFoundForkError(SpawnError, FileNotFoundError):
    """`fork()` of a module that does not exist: raised at once, and a `FileNotFoundError`
    (``errno`` ENOENT, ``filename`` the module), where Node would start the interpreter and let
    it exit with code 1."""

    def __init__(self, message: str, path: str) -> None:
        FileNotFoundError.__init__(self, errno.ENOENT, message, path)
        self.code = "ENOENT"
        self.path = path

    def __str__(self) -> str:
        return str(self.args[1])


class ProcessTimeoutError(IPCError, TimeoutError):
    """`wait()` / `wait_closed()` ran out of time; the child is still running."""

    code = "ETIMEDOUT"


class ExecError(IPCError):
    """`exec` / `exec_file` did not end with exit code 0.

    Exactly one cause is set: a non-zero `exit_code`, a `signal` (with `timed_out` or
    `max_buffer_exceeded` telling whether we sent it), or a start failure (`code` = errno name).
    `stdout` / `stderr` hold what was captured (truncated at `max_buffer` on overflow).
    """

    def __init__(
        self,
        message: str,
        *,
        command: str,
        stdout: str | bytes,
        stderr: str | bytes,
        exit_code: int | None = None,
        signal: str | None = None,
        killed: bool = False,
        timed_out: bool = False,
        max_buffer_exceeded: bool = False,
        code: str | int | None = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code
        self.signal = signal
        self.killed = killed
        self.timed_out = timed_out
        self.max_buffer_exceeded = max_buffer_exceeded
        self.code = code if code is not None else exit_code  # as Node: err.code = exit code

    def to_dict(self) -> dict[str, Any]:
        def text(value: str | bytes) -> str:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

        return {
            **super().to_dict(),
            "command": self.command,
            "stdout": text(self.stdout),
            "stderr": text(self.stderr),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "killed": self.killed,
            "timed_out": self.timed_out,
            "max_buffer_exceeded": self.max_buffer_exceeded,
        }
