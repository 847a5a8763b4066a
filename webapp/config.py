"""Settings with safe defaults.

Every limit the app enforces lives here, so a test (or `--max-children`) can change one and
see the matching 4xx. The defaults are for one person exploring on their own machine: bind to
127.0.0.1, a random token per start, a short allowlist of harmless commands.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Final

from .arguments import Arguments, declared

KiB: Final = 1024
MiB: Final = 1024 * KiB

#: Commands spawn / exec / exec_file may run without ``--allow-any-command``, each with the
#: arguments it takes (arguments.py): anything else is a 403 naming the argument. Each only
#: reads or prints; none runs code given to it, and the options that would change the machine
#: are left out (``date -s`` / ``--set`` / an ``MMDDhhmm`` operand set the clock, ``hostname
#: NAME`` / ``-F`` / ``-b`` set the host name) as are those that print a file's lines where
#: a reader would not look (``date -f FILE``, ``wc --files0-from``). ``node`` and ``python``
#: are allowed separately, and only with one of the shipped programs as their script (see
#: ``security.py``).
#: What no rule here covers: ``cat``, ``head``, ``tail``, ``wc`` and ``ls`` read any file their
#: user may read (that is what they are for); who that user is decides what they can see.
_HELP = "--help --version"
COMMAND_ARGUMENTS: Final[Mapping[str, Arguments]] = declared(
    [
        (
            "cat",
            Arguments.of(
                f"-A -b -e -E -n -s -t -T -u -v --show-all --number-nonblank --show-ends "
                f"--number --squeeze-blank --show-tabs --show-nonprinting {_HELP}",
                operands="files",
            ),
        ),
        (
            "date",
            Arguments.of(
                f"-u --utc --universal -R --rfc-email --resolution {_HELP}",
                valued="-d --date --rfc-3339",
                attached="-I --iso-8601",
                operands="format",
                why="date sets the clock with -s/--set or an MMDDhhmm operand, and prints "
                "the lines of a file with -f, so it takes only what reads the clock",
            ),
        ),
        ("echo", Arguments.of(operands="text")),
        ("false", Arguments.of(operands="text")),
        (
            "head",
            Arguments.of(
                f"-q --quiet --silent -v --verbose -z --zero-terminated {_HELP}",
                valued="-c --bytes -n --lines",
                operands="files",
            ),
        ),
        (
            "hostname",
            Arguments.of(
                "-a --alias -A --all-fqdns -d --domain -f --fqdn --long -i --ip-address "
                "-I --all-ip-addresses -s --short -V --version -h --help",
                why="hostname sets the host name with an operand, -F/--file or -b/--boot, "
                "so it takes only its read-only flags",
            ),
        ),
        (
            "ls",
            Arguments.of(
                "-a -A -b -B -c -C -d -D -f -F -g -G -h -H -i -k -l -L -m -n -N -o -p -q -Q "
                "-r -R -s -S -t -u -U -v -x -X -Z -1 --all --almost-all --author --escape "
                "--ignore-backups --directory --dired --no-group --human-readable --si "
                "--dereference-command-line --dereference-command-line-symlink-to-dir "
                "--inode --kibibytes --dereference --numeric-uid-gid --literal "
                "--hide-control-chars --show-control-chars --quote-name --reverse "
                f"--recursive --size --context --group-directories-first --full-time {_HELP}",
                valued="-I --ignore -w --width -T --tabsize --block-size --format --hide "
                "--indicator-style --quoting-style --sort --time --time-style",
                attached="--color --hyperlink --classify",
                operands="files",
            ),
        ),
        ("printf", Arguments.of(operands="text")),
        ("pwd", Arguments.of(f"-L -P --logical --physical {_HELP}")),
        (
            "seq",
            Arguments.of(
                f"-w --equal-width {_HELP}",
                valued="-f --format -s --separator",
                operands="any",
                numbers=True,
            ),
        ),
        ("sleep", Arguments.of(_HELP, operands="any")),
        (
            "tail",
            Arguments.of(
                f"-f -F -q --quiet --silent -v --verbose -z --zero-terminated --retry {_HELP}",
                valued="-c --bytes -n --lines -s --sleep-interval --pid --max-unchanged-stats",
                attached="--follow",
                operands="files",
            ),
        ),
        ("true", Arguments.of(operands="text")),
        (
            "uname",
            Arguments.of(
                "-a -s -n -r -v -m -p -i -o --all --kernel-name --nodename --kernel-release "
                "--kernel-version --machine --processor --hardware-platform "
                f"--operating-system {_HELP}"
            ),
        ),
        (
            "wc",
            Arguments.of(
                f"-c -m -l -L -w --bytes --chars --lines --max-line-length --words {_HELP}",
                attached="--total",
                operands="files",
                why="wc --files0-from reads file names from a file and prints them",
            ),
        ),
        ("whoami", Arguments.of(_HELP)),
        ("yes", Arguments.of(operands="text")),
    ]
)
DEFAULT_ALLOWED_COMMANDS: Final = tuple(COMMAND_ARGUMENTS)

DEFAULTS: Final[Mapping[str, Any]] = {
    "HOST": "127.0.0.1",
    "PORT": 8000,
    #: None: a random token is made by `create_app`.
    "TOKEN": None,
    "TOKEN_COOKIE": "ipc_explorer_token",
    #: Extra origins (``scheme://host:port``) allowed to open the WebSocket besides our own.
    "ALLOWED_ORIGINS": (),
    #: Host names accepted besides the bound address, localhost, 127.0.0.1 and [::1] with the
    #: port (``--allow-host``; Jupyter's ``local_hostnames``). Anything else: 403.
    "ALLOWED_HOSTS": (),
    "ALLOW_ANY_COMMAND": False,
    "ALLOWED_COMMANDS": DEFAULT_ALLOWED_COMMANDS,
    #: The arguments each allowed command takes; an allowed command missing here takes none.
    "COMMAND_ARGUMENTS": COMMAND_ARGUMENTS,
    # ---- limits -----------------------------------------------------------------------------
    #: Children alive at once (jobs and demo children together).
    "MAX_CHILDREN": 32,
    #: Flask's own limit on a request body; over it: 413 with a JSON error.
    "MAX_CONTENT_LENGTH": 1 * MiB,
    #: One message sent to a child (its JSON encoding).
    "MAX_MESSAGE_BYTES": 256 * KiB,
    #: Bytes sent to a fork child that wait on its channel, not yet read (POST /send past it:
    #: 429). ipc queues without a limit, as Node does; a child that stops reading must not
    #: make the server hold everything sent to it.
    "MAX_SEND_QUEUE_BYTES": 1 * MiB,
    #: One text the browser sends on the WebSocket (over it: rejected; over 4x: closed 1009).
    "WS_MAX_MESSAGE_BYTES": 64 * KiB,
    #: Frames per second one WebSocket client may send (one second of burst); past it the
    #: connection is closed 1008.
    "WS_MESSAGE_RATE": 50.0,
    #: Seconds between keep-alive pings; a client that misses one is closed (half-open).
    "WS_PING_INTERVAL": 20.0,
    #: WebSocket feeds open at once (all served by one thread, none by a request thread);
    #: past it the upgrade is refused with 503.
    "MAX_FEEDS": 128,
    #: Events kept per job (oldest dropped first) and their total size.
    "MAX_EVENTS_PER_JOB": 2000,
    "MAX_HISTORY_BYTES_PER_JOB": 1 * MiB,
    #: Output (stdout + stderr) kept per job for GET /api/jobs/<id>/output.
    "MAX_OUTPUT_PER_JOB": 1 * MiB,
    #: Jobs remembered; past it, the oldest finished ones are forgotten. With the two caps
    #: above, what jobs keep is at most 100 x (1 MiB + 1 MiB): bounded however they flood.
    "MAX_JOBS_KEPT": 100,
    #: Per WebSocket subscriber: events and bytes queued before output is merged / dropped.
    "SUBSCRIBER_QUEUE_EVENTS": 1000,
    "SUBSCRIBER_QUEUE_BYTES": 1 * MiB,
    #: Output events of one job and stream merged into one chunk up to this size.
    "COALESCE_BYTES": 64 * KiB,
    #: Events a (re)subscription replays at most; older ones are reported as dropped.
    "MAX_REPLAY_EVENTS": 10000,
    #: exec / exec_file: max_buffer default and ceiling; every kind: the ceiling of a request's
    #: `timeout` (seconds; --max-job-seconds lowers it, 0 there = no server limit).
    "DEFAULT_MAX_BUFFER": 1 * MiB,
    "MAX_MAX_BUFFER": 16 * MiB,
    "MAX_TIMEOUT": 3600.0,
    #: Seconds a demo request (/getSum, /sum, /compute) waits for its child's answer.
    "DEMO_TIMEOUT": 60.0,
    #: Largest range /compute accepts (max - min), so one request cannot run for hours.
    "DEMO_MAX_RANGE": 10**12,
    #: Largest range ?mode=inline computes in the server thread (it blocks the worker).
    "DEMO_MAX_INLINE_RANGE": 10**9,
    "HEARTBEAT_INTERVAL": 0.1,
    #: Seconds between `stats` events (rss, cpu) of each live job; 0 turns them off.
    "STATS_INTERVAL": 1.0,
    #: Stop: TERM to every child, then KILL after this many seconds.
    "SHUTDOWN_GRACE": 5.0,
    # ---- confinement of children (confine.py, cgroups.py, guard.py) -----------------------
    #: When the server runs as root, children run as this user with no capabilities.
    "CHILD_USER": "nobody",
    #: True: children keep the server's user and privileges (``--keep-privileges``).
    "KEEP_PRIVILEGES": False,
    #: Per-process limits of every child (0 = unlimited): address space (Node reserves about
    #: 0.7 GiB before it runs a line), tasks of the child's user, CPU seconds, file size, fds.
    "CHILD_ADDRESS_SPACE_MB": 2048,
    "CHILD_PROCESSES": 1024,
    "CHILD_CPU_SECONDS": 3600,
    "CHILD_FILE_SIZE_MB": 1024,
    "CHILD_OPEN_FILES": 1024,
    #: A cgroup per job where one can be made: its tasks (threads count) and memory (0 = none).
    "CGROUPS": True,
    "JOB_PIDS": 128,
    "JOB_MEMORY_MB": 512,
    #: Every job's wall-clock limit in seconds (0 = none); a request's `timeout` may be shorter.
    "MAX_JOB_SECONDS": 3600.0,
    #: Seconds from a job's timeout signal to SIGKILL, and from the end of a killed job's main
    #: child to ending what is left of it (a setsid grandchild; then its pipes are abandoned).
    "JOB_KILL_GRACE": 5.0,
    #: The catalogue of shipped child programs: None = `webapp.catalog`; tests may pass any
    #: object with `list_programs()` and `get_program(name)`.
    "CATALOG": None,
    # ---- scale-out (docs/scale-out.md) ------------------------------------------------------
    #: ``redis://[:password@]HOST:PORT/DB``: share jobs and events with every server and agent
    #: started with the same URL. None: everything in this process (the embedded default).
    "REDIS_URL": None,
    #: This process's runner name (``host`` of its jobs and events); None: ``<hostname>:<port>``.
    "RUNNER_NAME": None,
    #: "server" (serves the web app and runs the jobs started through it) or "agent".
    "RUNNER_KIND": "server",
    #: gunicorn workers (more than 1 only with REDIS_URL: each worker is a runner of its own).
    "WORKERS": 1,
    #: Seconds between a runner's heartbeats, and without one before it is declared lost.
    "RUNNER_HEARTBEAT": 2.0,
    "RUNNER_TTL": 8.0,
}


def build_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """DEFAULTS overlaid with `overrides`; an unknown key is refused so a typo is not ignored.

    :raises KeyError: a key that is not a setting (Flask's own keys are allowed too).
    """
    config = dict(DEFAULTS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULTS and not key.isupper():
            raise KeyError(f"unknown setting {key!r}; settings are UPPER_CASE: {sorted(DEFAULTS)}")
        config[key] = value
    if not config["TOKEN"]:
        config["TOKEN"] = new_token()
    return config


def new_token() -> str:
    """A fresh random access token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)
