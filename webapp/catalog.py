"""The catalogue of child programs the app ships (the files in `webapp/programs/`).

A fork or spawn request names one of these programs, never a path: `get_program(name)` is the
only way from a request to a file, so a request cannot make the server run a file of its
choosing. The list is a fixed tuple written here (not discovered from the folder) so that what
the app offers is reviewed code, and each entry says how to run it and what it shows.

No Flask import: the job service, the API (`Program.to_dict()` is the JSON shape of
`GET /api/programs`) and the tests all use this module directly.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

#: The folder that holds every shipped program.
PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"

Runtime = Literal["python", "node"]
Kind = Literal["fork", "spawn"]


@dataclass(frozen=True)
class Program:
    """One shipped child program.

    :param name: the public id a request uses (the file name, e.g. ``"compute.py"``, so that a
        Python and a Node program with the same stem stay apart).
    :param file: the file name inside `PROGRAMS_DIR`.
    :param runtime: ``"python"`` (run by `sys.executable`) or ``"node"`` (run by ``node``).
    :param kind: how it is meant to be started: ``"fork"`` (it talks over the message
        channel) or ``"spawn"`` (it only uses argv, stdout, stderr or an extra stdio pipe).
    :param description: what it demonstrates, its args and its messages, for the UI.
    :param default_args: the argv a launch form starts with.
    :param default_message: the first message a launch form sends (None: send nothing).
    :param seed: the seed tutorial it comes from (``"000"`` .. ``"004"``), or None.
    """

    name: str
    file: str
    runtime: Runtime
    kind: Kind
    description: str
    default_args: tuple[str, ...] = ()
    default_message: object | None = None
    seed: str | None = None

    @property
    def path(self) -> Path:
        """The program's absolute path."""
        return PROGRAMS_DIR / self.file

    @property
    def available(self) -> bool:
        """Whether it can run here: a Node program needs ``node`` on PATH (looked up each time,
        so installing node later is noticed)."""
        return self.runtime == "python" or shutil.which("node") is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape for the API (`default_args` as a list, plus `available`).

        `default_message` is a deep copy: a caller that edits the dict it got (to fill in a
        form, say) must not change the catalogue for everyone else."""
        return {
            "name": self.name,
            "file": self.file,
            "runtime": self.runtime,
            "kind": self.kind,
            "description": self.description,
            "default_args": list(self.default_args),
            "default_message": copy.deepcopy(self.default_message),
            "seed": self.seed,
            "available": self.available,
        }


class UnknownProgramError(LookupError):
    """A request named a program the app does not ship. The message lists the valid names."""


_PROGRAMS: tuple[Program, ...] = (
    # ---- Python: `from ipc import parent` -------------------------------------------------
    Program(
        "compute.py",
        "compute.py",
        "python",
        "fork",
        "The seeds' range sum in a child. Send {'min': a, 'max': b} for a <= i < b (seed 002) "
        "or any other message, e.g. '开始计算', for 0..10000 inclusive = 50005000 (seed 000). "
        "Big ranges report up to 20 {'type': 'progress', 'done', 'total'} messages; the result "
        "comes as a bare number. Arg --serve keeps answering; otherwise it exits after one.",
        default_message="开始计算",
        seed="000",
    ),
    Program(
        "echo.py",
        "echo.py",
        "python",
        "fork",
        "Sends back every message it gets, unchanged: the channel's round trip and wire "
        "format. Ends when the parent disconnects.",
        default_message={"hello": "world", "n": 1, "text": "你好"},
    ),
    Program(
        "ping_pong.py",
        "ping_pong.py",
        "python",
        "fork",
        "Answers {'type': 'ping', 'n': k, ...} with {'type': 'pong', 'n': k, ...} (other "
        "fields copied back) to measure a transport's round-trip latency; {'type': 'stop'} "
        "ends it.",
        default_message={"type": "ping", "n": 1},
    ),
    Program(
        "raw_frames.py",
        "raw_frames.py",
        "python",
        "fork",
        "Writes Node's wire format by hand, in odd pieces, for the frame inspector (Inspect, "
        "Channel bytes): {'type': 'burst', 'count': 3} sends 3 frames in one write(); "
        "{'type': 'split'} half a frame now and the rest after your next message; {'type': "
        "'big', 'bytes': N} one frame bigger than a read. Anything else is echoed. It writes "
        "nothing until told, so start recording first.",
    ),
    Program(
        "progress.py",
        "progress.py",
        "python",
        "fork",
        "Sends {'type': 'progress', 'done': k, 'total': STEPS} every INTERVAL_MS, then "
        "{'type': 'done'}: a progress bar that visibly fills. Args: [STEPS] [INTERVAL_MS].",
        default_args=("20", "250"),
    ),
    Program(
        "counter.py",
        "counter.py",
        "python",
        "fork",
        "A long-running child: prints 'count N/COUNT' and sends {'type': 'count', 'n', "
        "'total'} every INTERVAL_MS, until COUNT, a {'type': 'stop'} message, or the parent "
        "disconnects. Args: [COUNT] [INTERVAL_MS].",
        default_args=("300", "1000"),
    ),
    Program(
        "crash.py",
        "crash.py",
        "python",
        "fork",
        "Raises an uncaught exception after DELAY seconds: traceback on stderr, exit code 1. "
        "Args: [DELAY_SECONDS].",
        default_args=("1",),
    ),
    Program(
        "exit_code.py",
        "exit_code.py",
        "python",
        "fork",
        "Exits with the code given (0..255), after an optional delay, as process.exit(n) in "
        "the seeds. Args: CODE [DELAY_SECONDS].",
        default_args=("3",),
    ),
    Program(
        "ignore_term.py",
        "ignore_term.py",
        "python",
        "fork",
        "Ignores SIGTERM (and says so on stdout); only SIGKILL stops it, or the parent "
        "disconnecting, or MAX_SECONDS. Shows why shutdown escalates from TERM to KILL. "
        "Args: [MAX_SECONDS].",
        default_args=("300",),
    ),
    Program(
        "flood.py",
        "flood.py",
        "python",
        "fork",
        "Writes TOTAL_BYTES of numbered LINE_SIZE-byte lines to stdout as fast as it can, "
        "then sends {'type': 'done', 'bytes', 'lines'}: back pressure and bounded buffers. "
        "Args: [TOTAL_BYTES] [LINE_SIZE].",
        default_args=("10000000", "100"),
    ),
    Program(
        "grandchildren.py",
        "grandchildren.py",
        "python",
        "fork",
        "Starts N sleeping grandchildren in its own process group, prints their pids and "
        "sends {'type': 'grandchildren', 'pids'}; killing the group ends them all. "
        "Args: [N] [SECONDS].",
        default_args=("3", "120"),
    ),
    Program(
        "hello.py",
        "hello.py",
        "python",
        "fork",
        "Master and child say hello both ways: sends 'hello master process!' at start and "
        "prints every message it gets; stays while the channel is open (seed 003, 4.4.3).",
        default_message="hello child process!",
        seed="003",
    ),
    Program(
        "xss.py",
        "xss.py",
        "python",
        "fork",
        "Prints <script>alert(1)</script> and invalid UTF-8 on stdout (and an <img onerror> "
        "line on stderr), and sends an HTML message: all must show as text.",
    ),
    # ---- Node: the seeds' scripts ---------------------------------------------------------
    Program(
        "compute.js",
        "compute.js",
        "node",
        "fork",
        "Seed 000's child: on any message sums 0..10000 inclusive and sends 50005000.",
        default_message="开始计算",
        seed="000",
    ),
    Program(
        "child.js",
        "child.js",
        "node",
        "fork",
        "Seed 001's child: on any message sums 0 <= i < 100000 and sends 4999950000.",
        default_message="开始计算",
        seed="001",
    ),
    Program(
        "fork-compute.js",
        "fork-compute.js",
        "node",
        "fork",
        "Seed 002's child: on {max, min} sums min <= i < max and sends the sum (a JS double: "
        "inexact above 2^53). The seed sends {max: 4e9, min: 0}, about 25 s here; the default "
        "is /compute's 1e8.",
        default_message={"max": 100_000_000, "min": 0},
        seed="002",
    ),
    Program(
        "argv-child.js",
        "argv-child.js",
        "node",
        "spawn",
        "Seed 002's spawn('node', ['child.js', item]): prints the argument it got and exits "
        "(also the seed's five forks in a loop). Args: ITEM.",
        default_args=("4",),
        seed="002",
    ),
    Program(
        "command.js",
        "command.js",
        "node",
        "spawn",
        "Seed 003's command.js, run by exec / spawn / fork with an index: prints 'pid: P，"
        "进程I的stdout' on stdout and the stderr line on stderr. Args: I.",
        default_args=("0",),
        seed="003",
    ),
    Program(
        "hello.js",
        "hello.js",
        "node",
        "fork",
        "Seed 003's master/child hello (4.4.3): sends 'hello master process!' at start and "
        "logs each message; stays while the channel is open.",
        default_message="hello child process!",
        seed="003",
    ),
    Program(
        "fd3-child.js",
        "fd3-child.js",
        "node",
        "spawn",
        "Seed 003's socket example: writes 'hello master process!' to an extra stdio pipe "
        "(fd 3, opened with net.Socket) and exits. Spawn it with stdio[3] = 'pipe'.",
        seed="003",
    ),
)

_BY_NAME: MappingProxyType[str, Program] = MappingProxyType({p.name: p for p in _PROGRAMS})


def list_programs() -> list[Program]:
    """Every shipped program, Python first, in a stable order (Node ones even without node:
    see `Program.available`)."""
    return list(_PROGRAMS)


def get_program(name: str) -> Program:
    """The program a request names.

    :raises UnknownProgramError: (a `LookupError`) `name` is not a shipped program; the message
        says why and lists the valid names.
    """
    program = _BY_NAME.get(name) if isinstance(name, str) else None
    if program is not None:
        return program
    valid = ", ".join(_BY_NAME)
    if not isinstance(name, str):
        reason = f"a program is named by a string, got {type(name).__name__} {name!r}"
    elif "/" in name or "\\" in name or name.startswith("."):
        reason = f"{name!r} looks like a path; name one of the shipped programs, not a file"
    else:
        reason = f"unknown program {name!r}"
        stems = [p.name for p in _PROGRAMS if Path(p.name).stem == name]
        if stems:
            reason += f" (did you mean {' or '.join(map(repr, stems))}?)"
    raise UnknownProgramError(f"{reason}. Valid programs: {valid}")


def program_path(name: str) -> Path:
    """The absolute path of the program `name` (see `get_program` for the errors)."""
    return get_program(name).path
