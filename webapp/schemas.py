"""Every request and answer shape of ``/api``, declared once as JSON Schema.

The same dictionaries drive two things: jsoncheck.py validates each request against them
before anything runs, and openapi.py publishes them at ``/api/openapi.json`` (OpenAPI 3.1,
whose schemas are JSON Schema 2020-12). A field added here is validated and documented at
once; there is no second, hand-written validator to forget (as FastAPI and flask-openapi3 do
with their models).

Limits come from the app's settings (config.py), so `components(config)` builds the set for
one app: a ``--max-...`` flag changes the check and the document together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ipc

KINDS = ("fork", "spawn", "exec", "exec_file")
TRANSPORTS = ("auto", *ipc.TRANSPORTS)
MAX_ARGS = 256
MAX_ARG_LENGTH = 64 * 1024
MAX_ENV = 256
MAX_STDIO = 8
MAX_PATH = 4096
EXAMPLES = {
    "fork": '{"kind": "fork", "program": "compute.py", "message": {"min": 0, "max": 100}}',
    "spawn": '{"kind": "spawn", "command": "ls", "args": ["-l"]}',
    "exec": '{"kind": "exec", "command": "echo hello", "timeout": 5}',
    "exec_file": '{"kind": "exec_file", "command": "date", "args": ["-u"]}',
}

#: Requests that work, by schema name: published as the request body's ``examples`` (a
#: fuzzer starts from them, a reader copies them).
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "JobRequest": {kind: json.loads(text) for kind, text in EXAMPLES.items()},
    "KillRequest": {"term": {"signal": "SIGTERM"}},
    "SendRequest": {"message": {"message": {"ping": 1}}},
    "StdinRequest": {"line": {"data": "hello\n"}, "end": {"data": "", "end": True}},
}

#: A string that can become part of an argv or environ: no NUL (C strings end there).
#: ``x-forbid`` rather than a ``pattern``: the same rule, but fuzzers need not build a regex
#: strategy for it (that cost schemathesis 5 s per operation).
_NO_NUL = {"x-forbid": "\u0000", "x-forbid-means": "may not contain a NUL character"}


def job_name(kind: str) -> str:
    """``"an exec job"``, ``"a spawn job"``: a kind as a message names it."""
    return f"{'an' if kind.startswith('e') else 'a'} {kind} job"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _argv_string(description: str, min_length: int = 0) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": MAX_ARG_LENGTH,
        **_NO_NUL,
        "description": description,
    }


def _job_kind(kind: str, fields: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    common = {
        "kind": {"const": kind, "description": f'"{kind}"'},
        "cwd": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH,
            **_NO_NUL,
            "description": "a directory on the server (a non-empty string)",
        },
        "env": {
            "type": "object",
            "maxProperties": MAX_ENV,
            "propertyNames": {
                "minLength": 1,
                "maxLength": 1024,
                "x-forbid": "=\u0000",
                "x-forbid-means": "is not a variable name (no '=' or NUL)",
                "description": "a variable name",
            },
            "additionalProperties": _argv_string("a string"),
            "description": 'an object of string to string, e.g. {"LANG": "C"}',
        },
    }
    return {
        "type": "object",
        "x-name": job_name(kind),
        "x-example": EXAMPLES[kind],
        "properties": {**common, **fields},
        "required": ["kind", *required],
        "additionalProperties": False,
    }


def components(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every named schema, with this app's limits."""
    args = {
        "type": "array",
        "items": _argv_string("a string"),
        "maxItems": MAX_ARGS,
        "description": 'a list of strings, e.g. ["-l", "/tmp"]',
    }
    command = _argv_string("a non-empty string: one program name (arguments go in 'args')", 1)
    exec_options = {
        "timeout": {
            "type": "number",
            "minimum": 0,
            "maximum": config["MAX_TIMEOUT"],
            "description": "a number of seconds >= 0 (0: none)",
        },
        "max_buffer": {
            "type": "integer",
            "minimum": 1,
            "maximum": config["MAX_MAX_BUFFER"],
            "description": "a number of bytes >= 1",
        },
        "kill_signal": _ref("Signal"),
    }
    stdio_mode = {
        "enum": ["pipe", "ignore", None],
        "description": '"pipe", "ignore" or null ("inherit" would write on the server\'s own '
        "terminal)",
    }
    job_object = {
        "type": "object",
        "description": "a job: one child process and what the explorer knows about it",
        "properties": {
            "id": {"type": "string", "description": "the job's unguessable id"},
            "number": {"type": "integer", "description": "a short number for people, per run"},
            "kind": {"enum": list(KINDS)},
            "label": {"type": ["string", "null"]},
            "program": {"type": ["string", "null"]},
            "runtime": {"type": ["string", "null"]},
            "command": {"type": "string"},
            "args": {"type": "array", "items": {"type": "string"}},
            "pid": {"type": ["integer", "null"]},
            "state": {"type": "string"},
            "transport": {"type": ["string", "null"]},
            "connected": {"type": "boolean"},
            "killed": {"type": "boolean"},
            "started_at": {"type": "number"},
            "ended_at": {"type": ["number", "null"]},
            "exit_code": {"type": ["integer", "null"]},
            "signal": {"type": ["string", "null"]},
            "error": {"type": ["object", "null"]},
            "messages_in": {"type": "integer"},
            "messages_out": {"type": "integer"},
            "output_bytes": {"type": "integer"},
            "output_truncated": {"type": "boolean"},
            "timeout": {"type": "number"},
            "max_buffer": {"type": "integer"},
            "result": {"type": ["object", "null"]},
        },
        "required": ["id", "number", "kind", "command", "args", "state", "pid", "exit_code"],
    }
    event = {
        "type": "object",
        "description": "one event: the same shape on the feed and in the API",
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "job": {"type": ["string", "null"]},
            "pid": {"type": ["integer", "null"]},
            "type": {"type": "string"},
            "t": {"type": "number"},
            "data": {"type": ["object", "null"]},
        },
        "required": ["seq", "type", "t"],
    }
    return {
        "Signal": {
            "type": ["string", "integer"],
            "description": 'a signal name like "SIGTERM" (or its number)',
            "examples": ["SIGTERM", "SIGKILL", 9],
        },
        "ForkJob": _job_kind(
            "fork",
            {
                "program": _argv_string("a shipped program's name (GET /api/programs)", 1),
                "args": args,
                "transport": {"enum": list(TRANSPORTS)},
                "message": {"description": "any JSON value, sent to the child once it starts"},
            },
            ["program"],
        ),
        "SpawnJob": _job_kind(
            "spawn",
            {
                "command": command,
                "args": args,
                "stdio": {
                    "type": "array",
                    "items": stdio_mode,
                    "minItems": 1,
                    "maxItems": MAX_STDIO,
                    "description": 'a list of "pipe" / "ignore" / null, e.g. [null, null, null, '
                    '"pipe"] (entries from 3 are extra pipes)',
                },
            },
            ["command"],
        ),
        "ExecJob": _job_kind(
            "exec",
            {
                "command": _argv_string("a non-empty string: a command line", 1),
                **exec_options,
            },
            ["command"],
        ),
        "ExecFileJob": {
            **_job_kind(
                "exec_file",
                {
                    "command": command,
                    "file": command,
                    "args": args,
                    **exec_options,
                },
                [],
            ),
            "anyOf": [{"required": ["command"]}, {"required": ["file"]}],
        },
        "JobRequest": {
            "oneOf": [_ref(n) for n in ("ForkJob", "SpawnJob", "ExecJob", "ExecFileJob")],
            "discriminator": {
                "propertyName": "kind",
                "mapping": {
                    "fork": "#/components/schemas/ForkJob",
                    "spawn": "#/components/schemas/SpawnJob",
                    "exec": "#/components/schemas/ExecJob",
                    "exec_file": "#/components/schemas/ExecFileJob",
                },
            },
            "x-example": EXAMPLES["spawn"],
        },
        "KillRequest": {
            "type": "object",
            "x-name": "a kill request",
            "x-example": '{"signal": "SIGKILL"}',
            "properties": {"signal": _ref("Signal")},
            "additionalProperties": False,
        },
        "SendRequest": {
            "type": "object",
            "x-name": "a message to the child",
            "x-example": '{"message": "hi"}',
            "properties": {"message": {"description": "any JSON value"}},
            "required": ["message"],
            "additionalProperties": False,
        },
        "StdinRequest": {
            "type": "object",
            "x-name": "a write to stdin",
            "x-example": '{"data": "hello\\n", "end": false}',
            "properties": {
                "data": {"type": "string", "description": "a string (written as UTF-8)"},
                "end": {"type": "boolean", "description": "true or false"},
            },
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string", "description": "what to fix"}},
            "required": ["error"],
        },
        "Job": job_object,
        "JobList": {
            "type": "object",
            "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
            "required": ["jobs"],
        },
        "Event": event,
        "EventList": {
            "type": "object",
            "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "last_seq": {"type": "integer"},
            },
            "required": ["events", "last_seq"],
        },
        "Output": {
            "type": "object",
            "properties": {
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "bytes": {"type": "integer"},
                "truncated": {"type": "boolean"},
                "limit": {"type": "integer"},
            },
            "required": ["stdout", "stderr", "bytes", "truncated", "limit"],
        },
        "Killed": {
            "type": "object",
            "properties": {
                "job": _ref("Job"),
                "signal": {"type": "string"},
                "delivered": {"type": "boolean"},
            },
            "required": ["job", "signal", "delivered"],
        },
        "Queued": {
            "type": "object",
            "properties": {
                "queued": {"type": ["boolean", "integer"]},
                "below_high_water": {"type": "boolean"},
                "end": {"type": "boolean"},
            },
            "required": ["queued"],
        },
        "Programs": {
            "type": "object",
            "properties": {
                "programs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "runtime": {"type": "string"},
                            "description": {"type": "string"},
                        },
                        "required": ["name", "runtime"],
                    },
                }
            },
            "required": ["programs"],
        },
        "Heartbeat": {"type": "object"},
        "Status": {
            "type": "object",
            "properties": {
                "live_children": {"type": "integer"},
                "max_children": {"type": "integer"},
                "jobs": {"type": "integer"},
                "last_seq": {"type": "integer"},
                "subscribers": {"type": "integer"},
                "allow_any_command": {"type": "boolean"},
                "allowed_commands": {"type": "array", "items": {"type": "string"}},
                "command_arguments": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "allowed_hosts": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["live_children", "max_children", "allowed_commands"],
        },
        "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
    }


#: Query parameters, by name: each is read and checked by `api.query_int`.
QUERY = {
    "after": {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "only events with a larger seq (0: every kept event)",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    },
    "format": {
        "name": "format",
        "in": "query",
        "required": False,
        "description": "ndjson: one event a line, as a download",
        "schema": {"enum": ["json", "ndjson"]},
    },
}
