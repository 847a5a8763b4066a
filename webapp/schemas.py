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
    "LabRunRequest": {
        "small": {"rtt": 100, "msgs": 1000, "big": 2, "warmup": 10, "subjects": ["floor"]}
    },
    "FramesRequest": {"default": {"max_bytes": 16384}},
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
        "host": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            **_NO_NUL,
            "description": "the runner that starts it (GET /api/hosts; with --redis a server "
            "worker or an agent); default: this server",
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
    ceiling = config["MAX_TIMEOUT"]
    if config["MAX_JOB_SECONDS"]:  # no request outlives the server's --max-job-seconds
        ceiling = min(ceiling, config["MAX_JOB_SECONDS"])
    deadline_options = {  # every kind (guard.py ends the job)
        "timeout": {
            "type": "number",
            "minimum": 0,
            "maximum": ceiling,
            "description": "a number >= 0: seconds until kill_signal, then SIGKILL after the "
            "grace (0: the server's --max-job-seconds)",
        },
        "kill_signal": _ref("Signal"),
    }
    exec_options = {
        **deadline_options,
        "max_buffer": {
            "type": "integer",
            "minimum": 1,
            "maximum": config["MAX_MAX_BUFFER"],
            "description": "a number of bytes >= 1",
        },
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
            "number": {
                "type": "integer",
                "description": "a short number for people (per run; with --redis, one count "
                "for every runner)",
            },
            "host": {"type": "string", "description": "the runner whose child it is"},
            "lost": {
                "type": "object",
                "description": "state 'lost': when and why its runner was declared gone",
            },
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
            "timed_out": {"type": "boolean"},
            "confinement": {
                "type": ["object", "null"],
                "description": "how its child runs: user, capabilities, limits, cgroups",
            },
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
            "host": {"type": ["string", "null"], "description": "the runner it is about"},
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
                **deadline_options,
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
                **deadline_options,
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
        "HostList": {
            "type": "object",
            "properties": {
                "hosts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"enum": ["server", "agent"]},
                            "hostname": {"type": "string"},
                            "pid": {"type": "integer"},
                            "live_children": {"type": "integer"},
                            "capacity": {"type": "integer"},
                            "last_heartbeat": {"type": "number"},
                            "heartbeat_age": {"type": "number"},
                        },
                        "required": ["name", "pid", "live_children", "capacity"],
                    },
                }
            },
            "required": ["hosts"],
        },
        "Status": {
            "type": "object",
            "properties": {
                "runner": {"type": "string", "description": "this server's runner name"},
                "store": {
                    "type": "object",
                    "description": "where jobs and events live (memory, or Redis and whether "
                    "it can be reached now)",
                    "properties": {
                        "kind": {"enum": ["memory", "redis"]},
                        "ok": {"type": "boolean"},
                    },
                    "required": ["kind", "ok"],
                },
                "live_children": {"type": "integer"},
                "max_children": {"type": "integer"},
                "jobs": {"type": ["integer", "null"], "description": "null while Redis is away"},
                "last_seq": {"type": ["integer", "null"]},
                "subscribers": {"type": "integer"},
                "allow_any_command": {"type": "boolean"},
                "allowed_commands": {"type": "array", "items": {"type": "string"}},
                "command_arguments": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "allowed_hosts": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "the Host values accepted (a guard against DNS rebinding)",
                },
                "limits": {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                    "description": "every limit a request, a client or a job has here",
                },
                "feeds": {
                    "type": "object",
                    "properties": {
                        "in_use": {"type": "integer"},
                        "capacity": {"type": "integer"},
                    },
                    "required": ["in_use", "capacity"],
                },
                "children": {
                    "type": "object",
                    "description": "the children's user, defence, limits and cgroups",
                },
            },
            "required": ["live_children", "max_children", "allowed_commands"],
        },
        "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
        **_tool_components(),
    }


def _tool_components() -> dict[str, Any]:
    """The shapes of the measuring and inspecting tools (tools_api.py): the transport lab,
    the fd and frame inspectors, the trace export. Their bounds are the tools' own."""
    from . import frames, lab

    sizes = {
        name: {
            "type": "integer",
            "minimum": low,
            "maximum": high,
            "description": f"an integer from {low} to {high}",
        }
        for name, (low, high) in lab.LIMITS.items()
    }
    subject_names = ", ".join(lab.SUBJECTS)
    nullable_number = {"type": ["number", "null"]}
    subject = {
        "type": "object",
        "properties": {
            "key": {"enum": list(lab.SUBJECTS)},
            "label": {"type": "string"},
            "note": {"type": "string"},
            "state": {"enum": ["waiting", "running", "done", "failed", "cancelled"]},
            "phase": {"enum": ["starting", "rtt", "msgs", "big", None]},
            "rtt_done": {"type": "integer"},
            "rtt_total": {"type": "integer"},
            "rtt_p50_us": nullable_number,
            "rtt_p99_us": nullable_number,
            "msgs_per_s": nullable_number,
            "mb_per_s": nullable_number,
            "error": {"type": ["string", "null"]},
        },
        "required": ["key", "label", "state", "rtt_done", "rtt_total"],
    }
    peer_fd = {
        "type": "object",
        "properties": {"fd": {"type": "integer"}, "target": {"type": "string"}},
        "required": ["fd"],
    }
    fd_row = {
        "type": "object",
        "properties": {
            "fd": {"type": "integer"},
            "role": {"type": "string"},
            "target": {"type": "string"},
            "kind": {"type": "string"},
            "transport": {"type": "string"},
            "detail": {"type": "string"},
            "inode": {"type": ["integer", "null"]},
            "access": {"type": ["string", "null"]},
            "flags": {"type": "array", "items": {"type": "string"}},
            "pos": {"type": ["integer", "null"]},
            "peer": {
                "type": ["object", "null"],
                "properties": {
                    "where": {"enum": ["parent", "child", "elsewhere"]},
                    "pid": {"type": "integer"},
                    "fds": {"type": "array", "items": peer_fd},
                    "how": {"type": "string"},
                },
                "required": ["where"],
            },
        },
        "required": ["fd", "role", "target", "kind", "peer"],
    }
    chunk = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "direction": {"enum": ["read", "write", "eof"]},
            "t": {"type": "number"},
            "size": {"type": "integer"},
            "start": {"type": "integer"},
            "cut": {"type": "boolean"},
            "data": {"type": "string", "description": "the bytes, base64"},
        },
        "required": ["n", "direction", "t", "size", "start", "cut", "data"],
    }
    frame = {
        "type": "object",
        "properties": {
            "direction": {"enum": ["read", "write"]},
            "index": {"type": "integer"},
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "size": {"type": "integer"},
            "chunks": {"type": "array", "items": {"type": "integer"}},
            "complete": {"type": "boolean"},
            "message": {"description": "the decoded message (null: see note)"},
            "message_text": {"type": "string"},
            "note": {"type": "string"},
        },
        "required": ["direction", "index", "start", "end", "size", "chunks", "complete"],
    }
    return {
        "LabRunRequest": {
            "type": "object",
            "x-name": "a lab run",
            "x-example": '{"rtt": 1000, "subjects": ["floor", "socketpair"]}',
            "description": "every field optional: make bench's workload by default",
            "properties": {
                **sizes,
                "subjects": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "enum": list(lab.SUBJECTS),
                        "description": f"one of {subject_names}",
                    },
                    "description": f"a non-empty list of subjects from {subject_names}",
                },
            },
            "additionalProperties": False,
        },
        "LabRun": {
            "type": "object",
            "description": "one run of the transport lab, as it stands",
            "properties": {
                "id": {"type": "string"},
                "state": {"enum": ["running", "done", "cancelled"]},
                "reason": {"type": ["string", "null"]},
                "config": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                },
                "started_at": {"type": "number"},
                "ended_at": nullable_number,
                "current": {"type": ["string", "null"]},
                "pid": {"type": "integer", "description": "the server's: it measures"},
                "subjects": {"type": "array", "items": subject},
            },
            "required": ["id", "state", "config", "started_at", "subjects"],
        },
        "LabRunAnswer": {
            "type": "object",
            "properties": {"run": _ref("LabRun")},
            "required": ["run"],
        },
        "Lab": {
            "type": "object",
            "properties": {
                "run": {"oneOf": [_ref("LabRun"), {"type": "null"}]},
                "subjects": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "key": {"enum": list(lab.SUBJECTS)},
                            "label": {"type": "string"},
                            "note": {"type": "string"},
                        },
                        "required": ["key", "label", "note"],
                    },
                },
                "defaults": {"type": "object", "additionalProperties": {"type": "integer"}},
                "limits": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                        "required": ["min", "max"],
                    },
                },
                "max_seconds": {"type": "number"},
            },
            "required": ["run", "subjects", "defaults", "limits", "max_seconds"],
        },
        "Fds": {
            "type": "object",
            "description": "a running child's open fds, each matched to the server's end",
            "properties": {
                "job": {"type": "string"},
                "kind": {"enum": list(KINDS)},
                "program": {"type": ["string", "null"]},
                "pid": {"type": "integer"},
                "parent_pid": {"type": "integer"},
                "transport": {"type": ["string", "null"]},
                "channel": {
                    "type": "object",
                    "properties": {
                        "variable": {"type": ["string", "null"]},
                        "value": {"type": ["string", "null"]},
                        "fds": {"type": "array", "items": {"type": "integer"}},
                        "serialization": {"type": ["string", "null"]},
                    },
                    "required": ["variable", "fds"],
                },
                "sock_diag": {"type": "boolean"},
                "fds": {"type": "array", "items": fd_row},
            },
            "required": ["job", "kind", "pid", "parent_pid", "channel", "fds"],
        },
        "FramesRequest": {
            "type": "object",
            "x-name": "a channel capture",
            "x-example": '{"max_bytes": 16384}',
            "properties": {
                "max_bytes": {
                    "type": "integer",
                    "minimum": 1024,
                    "maximum": frames.MAX_LIMIT,
                    "description": f"an integer from 1024 to {frames.MAX_LIMIT} (bytes kept)",
                },
            },
            "additionalProperties": False,
        },
        "Capture": {
            "type": "object",
            "description": "the bytes of a fork job's channel, by read()/write(), and frames",
            "properties": {
                "job": {"type": "string"},
                "serialization": {"enum": ["json", "binary"]},
                "limit": {"type": "integer"},
                "kept_bytes": {"type": "integer"},
                "seen_bytes": {"type": "integer"},
                "full": {"type": "boolean"},
                "full_reason": {
                    "type": ["string", "null"],
                    "description": "what filled it: max_bytes, MAX_CHUNKS or MAX_FRAMES",
                },
                "capturing": {"type": "boolean"},
                "started_at": {"type": "number"},
                "stopped_at": nullable_number,
                "chunks": {"type": "array", "items": chunk},
                "frames": {"type": "array", "items": frame},
            },
            "required": ["job", "limit", "kept_bytes", "full", "capturing", "chunks", "frames"],
        },
        "Trace": {
            "type": "object",
            "description": "Chrome Trace Event Format (JSON Object Format), for Perfetto",
            "properties": {
                "traceEvents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "ph": {"type": "string"},
                            "pid": {"type": "integer"},
                        },
                        "required": ["name", "ph", "pid"],
                    },
                },
                "displayTimeUnit": {"enum": ["ms", "ns"]},
                "otherData": {"type": "object"},
            },
            "required": ["traceEvents"],
        },
    }


#: Query parameters, by name: each is read and checked where its route reads it.
QUERY = {
    "job": {
        "name": "job",
        "in": "query",
        "required": False,
        "description": "one job's id (GET /api/jobs); left out: every kept job",
        "schema": {"type": "string", "minLength": 1},
    },
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
