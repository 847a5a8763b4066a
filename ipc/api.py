"""`fork()`, `spawn()`, `exec()`, `exec_file()`: Node's option names in Python form.

Differences from Node, on purpose: times are in seconds; `kill()` signals the child's whole
process group by default; `env=None` inherits `os.environ`.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from . import wire
from .errors import ExecError, InvalidArgumentError, IPCError, SpawnError
from .process import ChildProcess, LaunchSpec, signal_name, signal_number
from .reactor import get_reactor
from .transports import (
    ENV_MAX_MESSAGE_SIZE,
    ENV_SERIALIZATION,
    NODE_CHANNEL_SERIALIZATION_MODE,
    open_transport,
)
from .transports import choose_transport as _resolve_transport

DEFAULT_MAX_BUFFER: Final = 1024 * 1024
NODE_SUFFIXES: Final = (".js", ".mjs", ".cjs")
STDIO_MODES: Final = ("pipe", "inherit", "ignore")
_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parent.parent)

ExecCallback = Callable[[ExecError | None, Any, Any], None]


def _strings(value: Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidArgumentError(f"{what} must be a list of strings, not {value!r}")
    if not all(isinstance(item, str) for item in value):
        raise InvalidArgumentError(f"every item of {what} must be a str: {value!r}")
    return list(value)


def _env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise InvalidArgumentError("env must be a dict of str to str")
    return dict(env)


def _cwd(cwd: str | os.PathLike[str] | None) -> str | None:
    if cwd is None:
        return None
    if not isinstance(cwd, str | os.PathLike):
        raise InvalidArgumentError(f"cwd must be a path, not {cwd!r}")
    return os.fspath(cwd)


def _positive_seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgumentError(f"{what} must be a number of seconds >= 0, not {value!r}")
    return float(value)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise SpawnError(
            "node was not found on PATH; it is needed to fork a .js module",
            code="ENOENT",
            path="node",
        )
    return node


def fork(
    module: str | os.PathLike[str],
    args: Sequence[str] | None = None,
    *,
    transport: str = "auto",
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    exec_path: str | None = None,
    exec_argv: Sequence[str] | None = None,
    silent: bool = False,
    serialization: str = "json",
    max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
    listeners: Mapping[str, Callable[..., Any]] | None = None,
    wrapper: Sequence[str] | None = None,
) -> ChildProcess:
    """Start `module` with a message channel to it, as Node's `child_process.fork()`.

    `.js` / `.mjs` / `.cjs` run under `node`, anything else under this Python (or `exec_path`).

    :raises InvalidArgumentError: a bad option (unknown transport or serialization, ...).
    :raises SpawnError: the transport cannot serve this child, or node is missing.
    """
    module = os.fspath(module)
    node_child = (
        module.endswith(NODE_SUFFIXES)
        if exec_path is None
        else (Path(exec_path).name.startswith("node"))
    )
    interpreter = exec_path or (_node() if node_child else sys.executable)
    wire.check_serialization(serialization)
    if serialization == "binary" and node_child:
        raise InvalidArgumentError("serialization='binary' is Python to Python; Node reads 'json'")
    if not isinstance(max_message_size, int) or max_message_size < 1:
        raise InvalidArgumentError(
            f"max_message_size must be a positive int, not {max_message_size!r}"
        )
    name = _resolve_transport(transport, node_child=node_child)
    child_env = dict(os.environ) if env is None else _env(env)
    assert child_env is not None
    if not node_child:
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        paths = [p for p in child_env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if _PACKAGE_ROOT not in paths:
            child_env["PYTHONPATH"] = os.pathsep.join([*paths, _PACKAGE_ROOT])
    child_env[NODE_CHANNEL_SERIALIZATION_MODE] = "json"
    if serialization == "binary":
        child_env[ENV_SERIALIZATION] = "binary"
    child_env[ENV_MAX_MESSAGE_SIZE] = str(max_message_size)
    stdio = "pipe" if silent else "inherit"
    setup = open_transport(name, node_child=node_child)
    spec = LaunchSpec(
        kind="fork",
        argv=[interpreter, *_strings(exec_argv, "exec_argv"), module, *_strings(args, "args")],
        cwd=_cwd(cwd),
        env=child_env,
        stdin=stdio,
        stdout=stdio,
        stderr=stdio,
        transport=setup,
        serialization=serialization,
        max_message_size=max_message_size,
        listeners=dict(listeners or {}),
        wrapper=_strings(wrapper, "wrapper"),
    )
    return ChildProcess(spec)


def spawn(
    command: str,
    args: Sequence[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    shell: bool | str = False,
    stdio: str | Sequence[str] = "pipe",
    listeners: Mapping[str, Callable[..., Any]] | None = None,
    wrapper: Sequence[str] | None = None,
) -> ChildProcess:
    """Start `command` with `args`, as Node's `child_process.spawn()`; output comes as events.

    `stdio`: one mode for 0-2 or a list; entries 3+ may be ``"pipe"`` (a duplex socket at that
    fd in the child, read as events ``fd3``, ``fd4``, ...).

    `wrapper` (also for `fork`): an argv prefix the child starts through, such as
    ``["setpriv", "--reuid=nobody", "--"]``; it must exec the rest of its argv, so that `pid`
    is still the program's.

    :raises InvalidArgumentError: a bad option.
    """
    if not isinstance(command, str) or not command:
        raise InvalidArgumentError(f"command must be a non-empty str, not {command!r}")
    argv = [command, *_strings(args, "args")]
    if shell:
        shell_path = shell if isinstance(shell, str) else "/bin/sh"
        argv = [shell_path, "-c", " ".join(argv)]
    modes = [stdio] * 3 if isinstance(stdio, str) else list(stdio)
    if len(modes) < 3:
        modes += ["pipe"] * (3 - len(modes))
    for index, mode in enumerate(modes):
        allowed = STDIO_MODES if index < 3 else ("pipe", "ignore", None)
        if mode not in allowed:
            raise InvalidArgumentError(
                f"stdio[{index}] must be one of {', '.join(map(repr, allowed))}, not {mode!r}"
            )
    spec = LaunchSpec(
        kind="spawn",
        argv=argv,
        cwd=_cwd(cwd),
        env=_env(env),
        stdin=modes[0],
        stdout=modes[1],
        stderr=modes[2],
        extra_pipes=[i for i, mode in enumerate(modes) if i >= 3 and mode == "pipe"],
        listeners=dict(listeners or {}),
        wrapper=_strings(wrapper, "wrapper"),
    )
    return ChildProcess(spec)


@dataclass(frozen=True)
class ExecResult:
    """What `exec` / `exec_file` return when the command exited with code 0."""

    command: str
    stdout: Any  # str, or bytes with encoding=None
    stderr: Any
    exit_code: int
    signal: str | None
    pid: int | None


class _ExecCollector:
    """Buffers a child's output for exec, kills it on timeout or overflow, builds the result."""

    def __init__(
        self,
        command: str,
        *,
        timeout: float,
        max_buffer: int,
        kill_signal: str | int,
        encoding: str | None,
        callback: ExecCallback | None,
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.max_buffer = max_buffer
        self.kill_signal = kill_signal
        self.encoding = encoding
        self.callback = callback
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.timed_out = False
        self.overflow: str | None = None
        self.start_error: SpawnError | None = None
        self.done = threading.Event()
        self.result: ExecResult | None = None
        self.error: ExecError | None = None
        self.child: ChildProcess | None = None
        self._timer = None

    def bind(self, child: ChildProcess) -> None:
        """Learn the child before it starts, so no listener ever runs without it (F3)."""
        self.child = child

    def listeners(self) -> dict[str, Callable[..., Any]]:
        return {
            "spawn": self._on_spawn,
            "stdout": lambda data: self._on_output("stdout", data),
            "stderr": lambda data: self._on_output("stderr", data),
            "error": self._on_error,
            "close": self._on_close,
        }

    def _on_spawn(self) -> None:
        if self.timeout > 0:
            self._timer = get_reactor().call_later(self.timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        if self.child is not None and self.child.returncode is None:
            self.timed_out = True
            self.child.kill(self.kill_signal)

    def _on_output(self, stream: str, data: bytes) -> None:
        buffer = self.buffers[stream]
        if self.overflow is not None:
            return
        buffer += data
        if len(buffer) > self.max_buffer:
            del buffer[self.max_buffer :]
            self.overflow = stream
            if self.child is not None:
                self.child.kill(self.kill_signal)

    def _on_error(self, exc: IPCError) -> None:
        if isinstance(exc, SpawnError):
            self.start_error = exc

    def _decode(self, stream: str) -> Any:
        data = bytes(self.buffers[stream])
        return data if self.encoding is None else data.decode(self.encoding, "replace")

    def _on_close(self, code: int | None, sig: str | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        stdout, stderr = self._decode("stdout"), self._decode("stderr")
        pid = self.child.pid if self.child is not None else None
        if self.start_error is None and code == 0 and self.overflow is None:
            self.result = ExecResult(self.command, stdout, stderr, 0, None, pid)
        else:
            self.error = self._make_error(code, sig, stdout, stderr)
        self.done.set()
        if self.callback is not None:
            self.callback(self.error, stdout, stderr)

    def _make_error(self, code: int | None, sig: str | None, stdout: Any, stderr: Any) -> ExecError:
        if self.start_error is not None:
            message, err_code = str(self.start_error), self.start_error.code
        elif self.overflow is not None:
            message = f"{self.overflow} maxBuffer length exceeded ({self.max_buffer} bytes)"
            err_code = "ERR_CHILD_PROCESS_STDIO_MAXBUFFER"
        elif self.timed_out:
            message = f"Command timed out after {self.timeout} s: {self.command}"
            err_code = None
        else:
            text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
            message = f"Command failed: {self.command}" + (f"\n{text}" if text else "")
            err_code = None
        return ExecError(
            message,
            command=self.command,
            stdout=stdout,
            stderr=stderr,
            exit_code=code,
            signal=sig,
            killed=bool(self.child is not None and self.child.killed),
            timed_out=self.timed_out,
            max_buffer_exceeded=self.overflow is not None,
            code=err_code,
        )


def _run_buffered(
    argv: list[str],
    command: str,
    *,
    callback: ExecCallback | None,
    timeout: float,
    max_buffer: int,
    kill_signal: str | int,
    encoding: str | None,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
) -> Any:
    timeout = _positive_seconds(timeout, "timeout")
    if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
        raise InvalidArgumentError(
            f"max_buffer must be a positive number of bytes, not {max_buffer!r}"
        )
    signal_number(kill_signal)  # validate now, not when the timer fires
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            raise InvalidArgumentError(f"unknown encoding {encoding!r}") from None
    if callback is not None and not callable(callback):
        raise InvalidArgumentError("callback must be callable")
    if callback is None and get_reactor().in_reactor_thread():
        raise IPCError("exec() without a callback would block the reactor thread")
    collector = _ExecCollector(
        command,
        timeout=timeout,
        max_buffer=max_buffer,
        kill_signal=kill_signal,
        encoding=encoding,
        callback=callback,
    )
    spec = LaunchSpec(
        kind="exec",
        argv=argv,
        cwd=_cwd(cwd),
        env=_env(env),
        stdin="ignore",
        listeners=collector.listeners(),
        on_created=collector.bind,
    )
    child = ChildProcess(spec)
    if callback is not None:
        return child
    collector.done.wait()
    if collector.error is not None:
        raise collector.error
    assert collector.result is not None
    return collector.result


def exec(
    command: str,
    callback: ExecCallback | None = None,
    *,
    timeout: float = 0,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    kill_signal: str | int = "SIGTERM",
    encoding: str | None = "utf-8",
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    shell: str = "/bin/sh",
) -> Any:
    """Run `command` in a shell and buffer its output, as Node's `child_process.exec()`.

    Without `callback`: blocks, returns an `ExecResult`, raises `ExecError`. With
    `callback(err, stdout, stderr)`: returns the `ChildProcess` at once.
    """
    if not isinstance(command, str) or not command.strip():
        raise InvalidArgumentError(f"command must be a non-empty str, not {command!r}")
    return _run_buffered(
        [shell, "-c", command],
        command,
        callback=callback,
        timeout=timeout,
        max_buffer=max_buffer,
        kill_signal=kill_signal,
        encoding=encoding,
        cwd=cwd,
        env=env,
    )


def exec_file(
    file: str,
    args: Sequence[str] | None = None,
    callback: ExecCallback | None = None,
    *,
    timeout: float = 0,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    kill_signal: str | int = "SIGTERM",
    encoding: str | None = "utf-8",
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Run `file` with `args` (no shell) and buffer its output, as Node's `execFile()`."""
    if not isinstance(file, str) or not file:
        raise InvalidArgumentError(f"file must be a non-empty str, not {file!r}")
    argv = [file, *_strings(args, "args")]
    return _run_buffered(
        argv,
        " ".join(argv),
        callback=callback,
        timeout=timeout,
        max_buffer=max_buffer,
        kill_signal=kill_signal,
        encoding=encoding,
        cwd=cwd,
        env=env,
    )


def choose_transport(transport: str = "auto", *, node_child: bool = False) -> str:
    """The concrete transport `fork(transport=...)` would use for such a child."""
    return _resolve_transport(transport, node_child=node_child)


__all__ = ["ExecResult", "choose_transport", "exec", "exec_file", "fork", "signal_name", "spawn"]
