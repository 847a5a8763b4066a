"""`fork()`, `spawn()`, `exec()`, `exec_file()`: Node's option names in Python form.

Differences from Node, on purpose: times are in seconds; `kill()` signals the child's whole
process group by default; `env=None` inherits `os.environ`; `fork()` of a module that does not
exist raises `FileNotFoundError` at once (Node starts the interpreter, which exits with 1);
`kill_after` (off by default, as in Node) follows a timeout's signal with SIGKILL.

exec is a spawn with exec's rules on top, in one place (`_ExecCollector`): buffering up to
`max_buffer`, and the result. Its timeout is the child's own (`timeout` / `kill_signal`, as
spawn's and fork's, on the reactor's timers). `exec(..., wait=False)` returns the child at once:
its `stdout` / `stderr` events stream live and `child.result` is a `Future` of the result.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from . import wire
from .errors import ExecError, InvalidArgumentError, IPCError, ModuleNotFoundForkError, SpawnError
from .process import ChildProcess, LaunchSpec, Listeners, seconds
from .reactor import get_reactor
from .signals import signal_name, signal_number
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
OnCreated = Callable[[ChildProcess], None]


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


def _listeners(listeners: Mapping[str, Callable[..., Any]] | None) -> Listeners:
    if listeners is None:
        return []
    if not isinstance(listeners, Mapping):
        raise InvalidArgumentError(
            f"listeners must be a dict of event to function, not {listeners!r}"
        )
    return list(listeners.items())


def _timeouts(timeout: float, kill_signal: str | int, kill_after: float | None) -> dict[str, Any]:
    """The LaunchSpec fields of a child's timeout, checked now rather than when it fires."""
    signal_number(kill_signal)
    return {
        "timeout": seconds(timeout, "timeout"),
        "kill_signal": kill_signal,
        "kill_after": None if kill_after is None else seconds(kill_after, "kill_after"),
    }


def _check_module(module: str, cwd: str | None) -> None:
    """:raises ModuleNotFoundForkError: (a `SpawnError` and a `FileNotFoundError`) no such file."""
    path = os.path.join(cwd or os.getcwd(), module)
    if not os.path.isfile(path):
        where = f" in cwd {cwd!r}" if cwd is not None and not os.path.isabs(module) else ""
        raise ModuleNotFoundForkError(f"fork(): no module {module!r}{where}", module)


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
    on_created: OnCreated | None = None,
    timeout: float = 0,
    kill_signal: str | int = "SIGTERM",
    kill_after: float | None = None,
) -> ChildProcess:
    """Start `module` with a message channel to it, as Node's `child_process.fork()`.

    `.js` / `.mjs` / `.cjs` run under `node`, anything else under this Python (or `exec_path`).
    A relative `module` is found from `cwd` (the child's directory), as Node finds it.

    `timeout` (seconds, 0 = none): then `kill_signal` is sent (Node's options); `kill_after`
    (None = never, as Node): then SIGKILL if the child still runs. `on_created(child)` runs
    before the child starts, so listeners that need the child object have it before any event.

    :raises InvalidArgumentError: a bad option (unknown transport or serialization, ...).
    :raises SpawnError: `module` does not exist (a `FileNotFoundError` too), the transport
        cannot serve this child, or node is missing.
    """
    module = os.fspath(module)
    cwd = _cwd(cwd)
    _check_module(module, cwd)
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
    limits = _timeouts(timeout, kill_signal, kill_after)
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
        cwd=cwd,
        env=child_env,
        stdin=stdio,
        stdout=stdio,
        stderr=stdio,
        transport=setup,
        serialization=serialization,
        max_message_size=max_message_size,
        listeners=_listeners(listeners),
        wrapper=_strings(wrapper, "wrapper"),
        on_created=on_created,
        **limits,
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
    on_created: OnCreated | None = None,
    timeout: float = 0,
    kill_signal: str | int = "SIGTERM",
    kill_after: float | None = None,
) -> ChildProcess:
    """Start `command` with `args`, as Node's `child_process.spawn()`; output comes as events.

    `stdio`: one mode for 0-2 or a list; entries 3+ may be ``"pipe"`` (a duplex socket at that
    fd in the child, read as events ``fd3``, ``fd4``, ...). `timeout`, `kill_signal`,
    `kill_after` and `on_created` as for `fork()`.

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
    limits = _timeouts(timeout, kill_signal, kill_after)
    spec = LaunchSpec(
        kind="spawn",
        argv=argv,
        cwd=_cwd(cwd),
        env=_env(env),
        stdin=modes[0],
        stdout=modes[1],
        stderr=modes[2],
        extra_pipes=[i for i, mode in enumerate(modes) if i >= 3 and mode == "pipe"],
        listeners=_listeners(listeners),
        wrapper=_strings(wrapper, "wrapper"),
        on_created=on_created,
        **limits,
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
    """Buffers a child's output for exec, kills it on overflow, and resolves `child.result`.

    Its listeners are attached before the caller's, so `result` is done by the time the
    caller's `close` listener runs.
    """

    def __init__(
        self,
        command: str,
        *,
        timeout: float,
        max_buffer: int,
        kill_signal: str | int,
        kill_after: float | None,
        encoding: str | None,
        callback: ExecCallback | None,
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.max_buffer = max_buffer
        self.kill_signal = kill_signal
        self.kill_after = kill_after
        self.encoding = encoding
        self.callback = callback
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.overflow: str | None = None
        self.start_error: SpawnError | None = None
        self.future: Future[ExecResult] = Future()
        self.future.set_running_or_notify_cancel()
        self.child: ChildProcess | None = None

    def bind(self, child: ChildProcess) -> None:
        """Learn the child before it starts, so no listener ever runs without it (F3)."""
        self.child = child
        child.result = self.future

    def listeners(self) -> Listeners:
        return [
            ("stdout", lambda data: self._on_output("stdout", data)),
            ("stderr", lambda data: self._on_output("stderr", data)),
            ("error", self._on_error),
            ("close", self._on_close),
        ]

    def _on_output(self, stream: str, data: bytes) -> None:
        buffer = self.buffers[stream]
        if self.overflow is not None:
            return
        buffer += data
        if len(buffer) > self.max_buffer:
            del buffer[self.max_buffer :]
            self.overflow = stream
            if self.child is not None:
                self.child.kill(self.kill_signal, kill_after=self.kill_after)

    def _on_error(self, exc: IPCError) -> None:
        if isinstance(exc, SpawnError):
            self.start_error = exc

    def _decode(self, stream: str) -> Any:
        data = bytes(self.buffers[stream])
        return data if self.encoding is None else data.decode(self.encoding, "replace")

    def _on_close(self, code: int | None, sig: str | None) -> None:
        stdout, stderr = self._decode("stdout"), self._decode("stderr")
        pid = self.child.pid if self.child is not None else None
        error: ExecError | None = None
        if self.start_error is None and code == 0 and self.overflow is None:
            self.future.set_result(ExecResult(self.command, stdout, stderr, 0, None, pid))
        else:
            error = self._make_error(code, sig, stdout, stderr)
            self.future.set_exception(error)
        if self.callback is not None:
            self.callback(error, stdout, stderr)

    def _make_error(self, code: int | None, sig: str | None, stdout: Any, stderr: Any) -> ExecError:
        timed_out = bool(self.child is not None and self.child.timed_out)
        if self.start_error is not None:
            message, err_code = str(self.start_error), self.start_error.code
        elif self.overflow is not None:
            message = f"{self.overflow} maxBuffer length exceeded ({self.max_buffer} bytes)"
            err_code = "ERR_CHILD_PROCESS_STDIO_MAXBUFFER"
        elif timed_out:
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
            timed_out=timed_out,
            max_buffer_exceeded=self.overflow is not None,
            code=err_code,
        )


def _run_buffered(
    argv: list[str],
    command: str,
    *,
    callback: ExecCallback | None,
    wait: bool,
    timeout: float,
    max_buffer: int,
    kill_signal: str | int,
    kill_after: float | None,
    encoding: str | None,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
    listeners: Mapping[str, Callable[..., Any]] | None,
    on_created: OnCreated | None,
    wrapper: Sequence[str] | None,
) -> Any:
    limits = _timeouts(timeout, kill_signal, kill_after)
    if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
        raise InvalidArgumentError(
            f"max_buffer must be a positive number of bytes, not {max_buffer!r}"
        )
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            raise InvalidArgumentError(f"unknown encoding {encoding!r}") from None
    if callback is not None and not callable(callback):
        raise InvalidArgumentError("callback must be callable")
    blocking = wait and callback is None
    if blocking and get_reactor().in_reactor_thread():
        raise IPCError(
            "exec() that waits would block the reactor thread; pass wait=False or a callback"
        )
    collector = _ExecCollector(
        command,
        timeout=limits["timeout"],
        max_buffer=max_buffer,
        kill_signal=kill_signal,
        kill_after=limits["kill_after"],
        encoding=encoding,
        callback=callback,
    )

    def created(child: ChildProcess) -> None:
        collector.bind(child)
        if on_created is not None:
            on_created(child)

    spec = LaunchSpec(
        kind="exec",
        argv=argv,
        cwd=_cwd(cwd),
        env=_env(env),
        stdin="ignore",
        listeners=[*collector.listeners(), *_listeners(listeners)],
        wrapper=_strings(wrapper, "wrapper"),
        on_created=created,
        **limits,
    )
    child = ChildProcess(spec)
    if not blocking:
        return child
    return collector.future.result()


def exec(
    command: str,
    callback: ExecCallback | None = None,
    *,
    wait: bool = True,
    timeout: float = 0,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    kill_signal: str | int = "SIGTERM",
    kill_after: float | None = None,
    encoding: str | None = "utf-8",
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    shell: str = "/bin/sh",
    listeners: Mapping[str, Callable[..., Any]] | None = None,
    on_created: OnCreated | None = None,
    wrapper: Sequence[str] | None = None,
) -> Any:
    """Run `command` in a shell and buffer its output, as Node's `child_process.exec()`.

    Blocks by default: returns an `ExecResult`, raises `ExecError`. With `wait=False` or a
    `callback(err, stdout, stderr)`: returns the `ChildProcess` at once, as Node does; its
    `stdout` / `stderr` events stream live (attach them with `listeners=` to see every chunk)
    and `child.result` is a `concurrent.futures.Future` of the `ExecResult` (its exception the
    `ExecError`). `timeout`, `kill_signal`, `kill_after`, `wrapper` as for `spawn()`.
    """
    if not isinstance(command, str) or not command.strip():
        raise InvalidArgumentError(f"command must be a non-empty str, not {command!r}")
    return _run_buffered(
        [shell, "-c", command],
        command,
        callback=callback,
        wait=wait,
        timeout=timeout,
        max_buffer=max_buffer,
        kill_signal=kill_signal,
        kill_after=kill_after,
        encoding=encoding,
        cwd=cwd,
        env=env,
        listeners=listeners,
        on_created=on_created,
        wrapper=wrapper,
    )


def exec_file(
    file: str,
    args: Sequence[str] | None = None,
    callback: ExecCallback | None = None,
    *,
    wait: bool = True,
    timeout: float = 0,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    kill_signal: str | int = "SIGTERM",
    kill_after: float | None = None,
    encoding: str | None = "utf-8",
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    listeners: Mapping[str, Callable[..., Any]] | None = None,
    on_created: OnCreated | None = None,
    wrapper: Sequence[str] | None = None,
) -> Any:
    """Run `file` with `args` (no shell) and buffer its output, as Node's `execFile()`;
    the options and the forms (blocking, `wait=False`, `callback`) are `exec()`'s."""
    if not isinstance(file, str) or not file:
        raise InvalidArgumentError(f"file must be a non-empty str, not {file!r}")
    argv = [file, *_strings(args, "args")]
    return _run_buffered(
        argv,
        " ".join(argv),
        callback=callback,
        wait=wait,
        timeout=timeout,
        max_buffer=max_buffer,
        kill_signal=kill_signal,
        kill_after=kill_after,
        encoding=encoding,
        cwd=cwd,
        env=env,
        listeners=listeners,
        on_created=on_created,
        wrapper=wrapper,
    )


def choose_transport(transport: str = "auto", *, node_child: bool = False) -> str:
    """The concrete transport `fork(transport=...)` would use for such a child."""
    return _resolve_transport(transport, node_child=node_child)


__all__ = ["ExecResult", "choose_transport", "exec", "exec_file", "fork", "signal_name", "spawn"]
