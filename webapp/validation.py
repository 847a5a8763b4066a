"""Turns a JSON job request into a `JobSpec`, or an `ApiError` that says how to fix it.

Validation happens here, before anything starts, so a bad request changes nothing: every field
is type-checked, unknown fields are refused (a typo must not be silently ignored), and the
command policy (security.py) decides what may run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ipc

from .errors import ApiError
from .jobs import JobSpec
from .programs_index import ProgramIndex
from .security import CommandPolicy, PolicyError

KINDS = ("fork", "spawn", "exec", "exec_file")
TRANSPORTS = ("auto", *ipc.TRANSPORTS)
MAX_ARGS = 256
MAX_ARG_LENGTH = 64 * 1024

_COMMON = {"kind", "cwd", "env"}
_FIELDS = {
    "fork": _COMMON | {"program", "args", "transport", "message", "timeout", "kill_signal"},
    "spawn": _COMMON | {"command", "args", "stdio", "timeout", "kill_signal"},
    "exec": _COMMON | {"command", "timeout", "max_buffer", "kill_signal"},
    "exec_file": _COMMON | {"command", "file", "args", "timeout", "max_buffer", "kill_signal"},
}
_EXAMPLES = {
    "fork": '{"kind": "fork", "program": "compute.py", "message": {"min": 0, "max": 100}}',
    "spawn": '{"kind": "spawn", "command": "ls", "args": ["-l"]}',
    "exec": '{"kind": "exec", "command": "echo hello", "timeout": 5}',
    "exec_file": '{"kind": "exec_file", "command": "date", "args": ["-u"]}',
}


def json_object(body: Any, what: str = "the request body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(
            400,
            f"{what} must be a JSON object with Content-Type: application/json, e.g. "
            + _EXAMPLES["spawn"],
        )
    return body


def string(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"'{key}' is required (a string)")
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{key}' must be a non-empty string, not {value!r}")
    if "\x00" in value:
        raise ApiError(400, f"'{key}' may not contain a NUL character")
    return value


def string_list(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f'\'{key}\' must be a list of strings, e.g. ["-l", "/tmp"]')
    if len(value) > MAX_ARGS:
        raise ApiError(400, f"'{key}' has {len(value)} items; at most {MAX_ARGS} are allowed")
    for item in value:
        if "\x00" in item or len(item) > MAX_ARG_LENGTH:
            raise ApiError(400, f"each of '{key}' must be under {MAX_ARG_LENGTH} chars, no NUL")
    return list(value)


def number(body: Mapping[str, Any], key: str, default: float, ceiling: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiError(400, f"'{key}' must be a number >= 0, not {value!r}")
    if value > ceiling:
        raise ApiError(400, f"'{key}' is {value}; the most allowed is {ceiling}")
    return value


def signal_name(value: Any, key: str = "signal") -> str:
    """A signal by name ("SIGTERM", "TERM") or number, returned as its name."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(400, f"'{key}' must be a signal name like \"SIGTERM\", not {value!r}")
    try:
        return ipc.signal_name(ipc.signal_number(value))
    except (ipc.InvalidArgumentError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None


MAX_STDIO = 8


def stdio_modes(value: Any) -> list[str] | None:
    """spawn's `stdio` as Node writes it: a list of "pipe" / "ignore" / null (= "pipe");
    entries from index 3 are extra pipes. "inherit" would write on the server's terminal."""
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STDIO:
        raise ApiError(
            400,
            f"'stdio' must be a list of 1 to {MAX_STDIO} entries, "
            'e.g. [null, null, null, "pipe"]',
        )
    modes = []
    for index, mode in enumerate(value):
        mode = "pipe" if mode is None else mode
        if mode not in ("pipe", "ignore"):
            raise ApiError(
                400,
                f'stdio[{index}] must be "pipe", "ignore" or null, not {mode!r} '
                '("inherit" would write on the server\'s own terminal)',
            )
        modes.append(mode)
    return modes + ["pipe"] * (3 - len(modes))


def transport(value: Any) -> str:
    if value is None:
        return "auto"
    if value not in TRANSPORTS:
        raise ApiError(400, f"unknown transport {value!r}; use one of: {', '.join(TRANSPORTS)}")
    return value


def env_map(body: Mapping[str, Any], policy: CommandPolicy) -> dict[str, str] | None:
    """The job's env: the server's environment with these variables set on top."""
    value = body.get("env")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(400, '\'env\' must be an object of string to string, e.g. {"LANG": "C"}')
    for key in value:
        if not key or "=" in key or "\x00" in key or "\x00" in value[key]:
            raise ApiError(400, f"env variable name {key!r} is not valid")
    try:
        policy.check_env(value)
    except PolicyError as exc:
        raise ApiError(403, str(exc)) from None
    return {**os.environ, **value}


def cwd_path(body: Mapping[str, Any]) -> str | None:
    cwd = string(body, "cwd")
    if cwd is not None and not os.path.isdir(cwd):
        raise ApiError(400, f"'cwd' {cwd!r} is not a directory on the server")
    return cwd


def parse_job(
    body: Any, config: Mapping[str, Any], policy: CommandPolicy, programs: ProgramIndex
) -> JobSpec:
    """:raises ApiError: 400 for a malformed request, 403 for a command the policy refuses."""
    body = json_object(body)
    kind = body.get("kind")
    if kind not in KINDS:
        raise ApiError(
            400,
            f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}; e.g. {_EXAMPLES['spawn']}",
        )
    unknown = sorted(set(body) - _FIELDS[kind])
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s) {', '.join(map(repr, unknown))} for a {kind} job; its fields "
            f"are {', '.join(sorted(_FIELDS[kind]))}; e.g. {_EXAMPLES[kind]}",
        )
    cwd = cwd_path(body)
    env = env_map(body, policy)
    if kind == "fork":
        return _deadline(_fork(body, programs, cwd, env), body, config)
    command = string(body, "command") or (string(body, "file") if kind == "exec_file" else None)
    if command is None:
        raise ApiError(400, f"'command' is required for a {kind} job; e.g. {_EXAMPLES[kind]}")
    args = string_list(body, "args")
    spec = JobSpec(kind=kind, argv=[], command=command, args=args, cwd=cwd, env=env)
    try:
        if kind == "exec":
            argv = policy.check_shell(command)
            spec.shell = argv is None
            spec.argv = argv or ["/bin/sh", "-c", command]
        else:
            spec.argv = policy.check_argv(command, args)
    except PolicyError as exc:
        raise ApiError(403, str(exc)) from None
    if kind == "spawn":
        spec.stdio = stdio_modes(body.get("stdio"))
    if kind in ("exec", "exec_file"):
        spec.max_buffer = int(
            number(body, "max_buffer", config["DEFAULT_MAX_BUFFER"], config["MAX_MAX_BUFFER"])
        )
        if spec.max_buffer < 1:
            raise ApiError(400, "'max_buffer' must be at least 1 byte")
    return _deadline(spec, body, config)


def _deadline(spec: JobSpec, body: Mapping[str, Any], config: Mapping[str, Any]) -> JobSpec:
    """`timeout` (seconds, 0 = the server's --max-job-seconds) and `kill_signal`, any kind."""
    ceiling = config["MAX_TIMEOUT"]
    if config["MAX_JOB_SECONDS"]:
        ceiling = min(ceiling, config["MAX_JOB_SECONDS"])
    spec.timeout = float(number(body, "timeout", 0, ceiling))
    spec.kill_signal = signal_name(body.get("kill_signal", "SIGTERM"), "kill_signal")
    return spec


def _fork(
    body: Mapping[str, Any], programs: ProgramIndex, cwd: str | None, env: dict[str, str] | None
) -> JobSpec:
    name = string(body, "program")
    if name is None:
        raise ApiError(400, f"'program' is required for a fork job; e.g. {_EXAMPLES['fork']}")
    program = programs.get(name)
    if program is None:
        raise ApiError(
            400,
            f"unknown program {name!r}; a fork job names one of the shipped programs: "
            f"{', '.join(programs.names())} (GET /api/programs)",
        )
    spec = JobSpec(
        kind="fork",
        argv=[program.path],
        command=program.name,
        args=string_list(body, "args"),
        program=program.name,
        runtime=program.runtime,
        transport=transport(body.get("transport")),
        cwd=cwd,
        env=env,
    )
    if spec.transport == "pipe" and program.runtime == "node":
        raise ApiError(
            400,
            f"transport 'pipe' cannot carry messages to a Node child ({name} needs a duplex "
            "socket); use 'auto', 'socketpair', 'unix' or 'tcp'",
        )
    if "message" in body:
        spec.message, spec.has_message = body["message"], True
    return spec
