"""Turns a JSON job request into a `JobSpec`, or an `ApiError` that says how to fix it.

Validation happens before anything starts, so a bad request changes nothing. It has two
steps. The shape (types, ranges, unknown fields, lone surrogates, nesting) is declared once in
schemas.py and checked by jsoncheck.py when the request is read (openapi.py's `operation`), so
`parse_job` gets a body of the right shape. What a schema cannot say is checked here: that
`cwd` is a directory, that `program` is a shipped one, that the command policy
(security.py) lets `command` run with those `args` and `env`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Any

import ipc

from .errors import ApiError
from .jobs import JobSpec
from .programs_index import ProgramIndex
from .schemas import TRANSPORTS, job_name
from .security import CommandPolicy, PolicyError


def signal_name(value: Any, key: str = "signal") -> str:
    """A signal by name ("SIGTERM", "TERM") or number, returned as its name."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(400, f"'{key}' must be a signal name like \"SIGTERM\", not {value!r}")
    try:
        return ipc.signal_name(ipc.signal_number(value))
    except (ipc.InvalidArgumentError, ValueError, OverflowError) as exc:
        raise ApiError(400, f"'{key}': {exc}") from None


def stdio_modes(value: list[Any] | None) -> list[str] | None:
    """spawn's `stdio` as Node writes it (its shape is checked already): null means "pipe";
    entries from index 3 are extra pipes. "inherit" would write on the server's terminal."""
    if value is None:
        return None
    modes = ["pipe" if mode is None else mode for mode in value]
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
    try:
        policy.check_env(value)
    except PolicyError as exc:
        raise ApiError(403, str(exc)) from None
    return {**os.environ, **value}


def cwd_path(body: Mapping[str, Any]) -> str | None:
    cwd = body.get("cwd")
    if cwd is not None and not os.path.isdir(cwd):
        raise ApiError(400, f"'cwd' {cwd!r} is not a directory on the server")
    return cwd


def one_program_name(command: str, kind: str, policy: CommandPolicy) -> None:
    """`command` of spawn / exec_file names one program: arguments in it are a common slip
    (``"ls -lh"``), which the allowlist would call "not allowed" although ``ls`` is."""
    if policy.allow_any or not any(c.isspace() for c in command):
        return
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    example = ", ".join(f'"{w}"' for w in words[1:])
    raise ApiError(
        400,
        f"'command' of {job_name(kind)} is one program name, not {command!r}: put arguments in "
        f'\'args\', e.g. {{"command": "{words[0] if words else ""}", "args": [{example}]}}',
    )


def parse_job(
    body: Mapping[str, Any],
    config: Mapping[str, Any],
    policy: CommandPolicy,
    programs: ProgramIndex,
) -> JobSpec:
    """`body` has the shape of schemas.py's ``JobRequest`` (checked when it was read).

    :raises ApiError: 400 for a request that cannot run, 403 for one the policy refuses.
    """
    kind = body["kind"]
    cwd = cwd_path(body)
    env = env_map(body, policy)
    if kind == "fork":
        return _deadline(_fork(body, programs, cwd, env), body)
    command = body.get("command") or body["file"]
    if kind != "exec":
        one_program_name(command, kind, policy)
    args = list(body.get("args", ()))
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
        spec.max_buffer = int(body.get("max_buffer", config["DEFAULT_MAX_BUFFER"]))
    return _deadline(spec, body)


def _deadline(spec: JobSpec, body: Mapping[str, Any]) -> JobSpec:
    """`timeout` (seconds, 0 = the server's --max-job-seconds; its ceiling is in the schema)
    and `kill_signal`, for every kind."""
    spec.timeout = float(body.get("timeout", 0))
    spec.kill_signal = signal_name(body.get("kill_signal", "SIGTERM"), "kill_signal")
    return spec


def _fork(
    body: Mapping[str, Any], programs: ProgramIndex, cwd: str | None, env: dict[str, str] | None
) -> JobSpec:
    name = body["program"]
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
        args=list(body.get("args", ())),
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


__all__ = ["parse_job", "signal_name", "stdio_modes", "transport"]
