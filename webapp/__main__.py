"""``ipc-explorer`` / ``python -m webapp``: serve the app under gunicorn and print its URL;
``ipc-explorer agent ...``: a runner without a web server (``agent.py``).

gunicorn runs threaded workers (``-k gthread --threads N``). By default one worker keeps every
job, event and subscriber in one process, so the feed sees every job. ``--workers N`` needs
``--redis URL``: then each worker is a runner of its own and they share jobs and events through
Redis (docs/scale-out.md). The N request threads serve HTTP only: a WebSocket feed holds one
just for its handshake, then the feed hub's single thread serves it (``feedhub.py``), up to
``--max-feeds`` at once (per worker). The URL with the token is printed (and flushed) once the
port listens, as Jupyter does.

Stopping (Ctrl-C or SIGTERM): the worker's signal handlers only set an event (gunicorn's
"handlers only enqueue" rule); a stopper thread then ends the feed connections and stops every
child: TERM to each process group, KILL after the grace period (default 5 s), reaping all.
The arbiter waits for that (its graceful timeout is the grace plus a margin) and exits 0.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import socket
import sys
import threading
from typing import Any, NoReturn

from gunicorn.app.base import BaseApplication

from .config import DEFAULTS, new_token


def port_number(text: str) -> int:
    """argparse type for --port: a TCP port, or a one-line error (not gunicorn's traceback)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (use 1 to 65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (use 1 to 65535)")
    return port


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line that says what to fix, not a screenful of usage
    (the full list is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every flag, each with its default in its help (README's "Safe by default" lists the
    same flags with the same defaults; a test keeps them in step)."""
    parser = _Parser(
        prog="ipc-explorer",
        description="IPC Explorer: Node's child_process model in Python, explored live.",
    )
    parser.add_argument(
        "--host", default=DEFAULTS["HOST"], help="bind address (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULTS["PORT"],
        help="TCP port to listen on (default %(default)s)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept requests whose Host header is NAME (repeatable); by default only "
        "the bound address, localhost, 127.0.0.1 and [::1] with the port are accepted, "
        "against DNS rebinding",
    )
    parser.add_argument("--token", default=None, help="access token (default: a random one)")
    parser.add_argument(
        "--allow-any-command",
        action="store_true",
        help="let spawn/exec run any command, shell syntax included (remote code execution "
        "for whoever has the token: only on a machine you own)",
    )
    parser.add_argument(
        "--max-children",
        type=int,
        default=DEFAULTS["MAX_CHILDREN"],
        help="children alive at once, jobs and demo children; past it: 429 (default %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=32,
        help="request threads for HTTP; open WebSocket feeds do not hold one (default %(default)s)",
    )
    parser.add_argument(
        "--max-feeds",
        type=int,
        default=DEFAULTS["MAX_FEEDS"],
        help="WebSocket feeds open at once (browser tabs); past it a new one gets HTTP 503 "
        "before the upgrade (default %(default)s)",
    )
    parser.add_argument(
        "--ws-rate",
        type=float,
        default=DEFAULTS["WS_MESSAGE_RATE"],
        help="WebSocket frames per second one client may send, with one second of burst; "
        "past it: close 1008 (default %(default)s)",
    )
    parser.add_argument(
        "--ws-ping-interval",
        type=float,
        default=DEFAULTS["WS_PING_INTERVAL"],
        help="seconds between keep-alive pings; a feed that does not answer one is closed, "
        "so a half-open connection frees its slot (default %(default)s)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULTS["SHUTDOWN_GRACE"],
        help="seconds between TERM and KILL for the children at stop (default %(default)s)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=DEFAULTS["MAX_CONTENT_LENGTH"],
        help="bytes of a request body, and of stdin waiting for a child (default %(default)s)",
    )
    parser.add_argument(
        "--max-message",
        type=int,
        default=DEFAULTS["MAX_MESSAGE_BYTES"],
        help="bytes of one message to a child, as JSON (default %(default)s)",
    )
    parser.add_argument(
        "--max-send-queue",
        type=int,
        default=DEFAULTS["MAX_SEND_QUEUE_BYTES"],
        help="bytes sent to a fork child that wait for it to read them; past it a send gets "
        "429 (default %(default)s)",
    )
    parser.add_argument(
        "--max-events-per-job",
        type=int,
        default=DEFAULTS["MAX_EVENTS_PER_JOB"],
        help="events kept per job (default %(default)s)",
    )
    parser.add_argument(
        "--max-output-per-job",
        type=int,
        default=DEFAULTS["MAX_OUTPUT_PER_JOB"],
        help="output bytes kept per job (default %(default)s)",
    )
    parser.add_argument(
        "--max-ws-message",
        type=int,
        default=DEFAULTS["WS_MAX_MESSAGE_BYTES"],
        help="bytes per WebSocket message from a client: over it the message is rejected, "
        "over 4x the connection is closed 1009 (default %(default)s)",
    )
    parser.add_argument(
        "--max-jobs-kept",
        type=int,
        default=DEFAULTS["MAX_JOBS_KEPT"],
        help="jobs remembered; the oldest finished ones go first (default %(default)s)",
    )
    parser.add_argument(
        "--demo-timeout",
        type=float,
        default=DEFAULTS["DEMO_TIMEOUT"],
        help="seconds /getSum, /sum, /compute wait for their child (default %(default)s)",
    )
    add_redis_argument(
        parser, "everything stays in this process; the password is better given there"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gunicorn worker processes (default %(default)s; more need --redis)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="this server's runner name, shown as the host of its jobs (default "
        "<hostname>:<port>, plus /<pid> per worker with --workers)",
    )
    _add_confinement_args(parser)
    parser.add_argument(
        "--log-level", default="warning", help="gunicorn's log level (default %(default)s)"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    positive = (
        "max_children",
        "threads",
        "workers",
        "max_body",
        "max_message",
        "max_send_queue",
        "max_events_per_job",
        "max_output_per_job",
        "max_ws_message",
        "max_jobs_kept",
        "demo_timeout",
        "max_feeds",
        "ws_rate",
    )
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.grace < 0:
        parser.error("--grace must be >= 0")
    if args.workers > 1 and not args.redis:
        parser.error(
            f"--workers {args.workers} needs --redis URL: each worker is a process with "
            "children of its own, and only a shared Redis lets every worker's feed and API "
            "see every job (run redis-server and pass --redis redis://127.0.0.1:6379/0)"
        )
    if args.redis:
        check_redis_url(parser, args.redis)
    _check_confinement_args(parser, args)
    if args.ws_ping_interval <= 0:
        parser.error("--ws-ping-interval must be more than 0 seconds")
    return args


def add_redis_argument(parser: argparse.ArgumentParser, without: str) -> None:
    """``--redis URL``, defaulting to $IPC_EXPLORER_REDIS (a command line shows in `ps`)."""
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("IPC_EXPLORER_REDIS") or None,
        help="redis://[:PASSWORD@]HOST:PORT/DB: share jobs and events with every server and "
        f"agent started with the same URL (default: $IPC_EXPLORER_REDIS; without: {without})",
    )


def check_redis_url(parser: argparse.ArgumentParser, url: str) -> None:
    from .redis_store import check_url

    try:
        check_url(url)
    except ValueError as exc:
        parser.error(str(exc))


#: (flag, setting, type, help) of the children's confinement; 0 means no limit for each.
CONFINEMENT_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    (
        "--child-address-space-mb",
        "CHILD_ADDRESS_SPACE_MB",
        int,
        "RLIMIT_AS of every child in MiB; Node needs about 800 to start",
    ),
    ("--child-processes", "CHILD_PROCESSES", int, "RLIMIT_NPROC: tasks of the child's user"),
    ("--child-cpu-seconds", "CHILD_CPU_SECONDS", int, "RLIMIT_CPU of every child; past it SIGXCPU"),
    ("--child-file-size-mb", "CHILD_FILE_SIZE_MB", int, "RLIMIT_FSIZE of every child in MiB"),
    ("--child-open-files", "CHILD_OPEN_FILES", int, "RLIMIT_NOFILE of every child"),
    ("--job-pids", "JOB_PIDS", int, "pids.max of each job's cgroup (threads count)"),
    (
        "--job-memory-mb",
        "JOB_MEMORY_MB",
        int,
        "memory cap of each job's cgroup in MiB; past it the OOM killer acts",
    ),
    (
        "--max-job-seconds",
        "MAX_JOB_SECONDS",
        float,
        "wall-clock limit of every job; a request's timeout may be shorter",
    ),
    (
        "--kill-grace",
        "JOB_KILL_GRACE",
        float,
        "seconds from a job's timeout signal to SIGKILL, and from a killed job's exit to "
        "ending what is left of it",
    ),
)


def _add_confinement_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "children's confinement",
        "When the server runs as root, children run as --child-user with no capabilities "
        "(shipped programs that user cannot run: as root with an empty capability bounding "
        "set). Every child gets the rlimits below, each job a cgroup (pids, memory) where one "
        "can be made. 0 turns a limit off.",
    )
    group.add_argument(
        "--child-user",
        default=DEFAULTS["CHILD_USER"],
        metavar="USER",
        help="user the children run as when the server is root (default %(default)s)",
    )
    group.add_argument(
        "--keep-privileges",
        action="store_true",
        help="children keep the server's user and capabilities (root stays root)",
    )
    group.add_argument(
        "--no-cgroups", action="store_true", help="no cgroup per job (no pids / memory cap)"
    )
    for flag, setting, kind, text in CONFINEMENT_FLAGS:
        seconds = kind is float or flag.endswith("-seconds")
        unit = "MIB" if flag.endswith("-mb") else "SECONDS" if seconds else "N"
        group.add_argument(
            flag,
            type=kind,
            default=DEFAULTS[setting],
            metavar=unit,
            help=f"{text} (default %(default)s)",
        )


def _check_confinement_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag, _setting, _kind, _text in CONFINEMENT_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if not math.isfinite(value) or value < 0:
            parser.error(f"{flag} must be >= 0 (0 turns the limit off), not {value}")
    if os.geteuid() == 0 and not args.keep_privileges:
        import pwd

        try:
            uid = pwd.getpwnam(args.child_user).pw_uid
        except KeyError:
            parser.error(f"--child-user: no user {args.child_user!r} on this system")
        if uid == 0:
            parser.error("--child-user must be an unprivileged user; --keep-privileges keeps root")


def app_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "HOST": args.host,
        "PORT": args.port,
        "TOKEN": args.token,
        "ALLOW_ANY_COMMAND": args.allow_any_command,
        "ALLOWED_HOSTS": tuple(args.allow_host),
        "MAX_CHILDREN": args.max_children,
        "SHUTDOWN_GRACE": args.grace,
        "MAX_CONTENT_LENGTH": args.max_body,
        "MAX_MESSAGE_BYTES": args.max_message,
        "MAX_SEND_QUEUE_BYTES": args.max_send_queue,
        "MAX_EVENTS_PER_JOB": args.max_events_per_job,
        "MAX_OUTPUT_PER_JOB": args.max_output_per_job,
        "WS_MAX_MESSAGE_BYTES": args.max_ws_message,
        "MAX_FEEDS": args.max_feeds,
        "WS_MESSAGE_RATE": args.ws_rate,
        "WS_PING_INTERVAL": args.ws_ping_interval,
        "MAX_JOBS_KEPT": args.max_jobs_kept,
        "DEMO_TIMEOUT": args.demo_timeout,
        "REDIS_URL": args.redis,
        "WORKERS": args.workers,
        "RUNNER_NAME": args.name,
        **confinement_config(args),
    }


def confinement_config(args: argparse.Namespace) -> dict[str, Any]:
    """The children's confinement settings from the flags `_add_confinement_args` added (the
    server's and the agent's: both start children)."""
    return {
        "CHILD_USER": args.child_user,
        "KEEP_PRIVILEGES": args.keep_privileges,
        "CGROUPS": not args.no_cgroups,
        **{
            setting: getattr(args, flag[2:].replace("-", "_"))
            for flag, setting, _kind, _text in CONFINEMENT_FLAGS
        },
    }


def display_url(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


class ExplorerServer(BaseApplication):
    """gunicorn, configured in code: gthread workers, our app, our stop procedure."""

    def __init__(self, config: dict[str, Any], threads: int, log_level: str) -> None:
        self.app_config = config
        self.threads = threads
        self.log_level = log_level
        super().__init__()

    def load_config(self) -> None:
        host, port = self.app_config["HOST"], self.app_config["PORT"]
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        grace = self.app_config["SHUTDOWN_GRACE"]
        settings = {
            "bind": [bind],
            "workers": self.app_config["WORKERS"],
            "worker_class": "gthread",
            "threads": self.threads,
            # The stop takes up to grace (TERM) + 5 s (KILL, reaping) + the cgroups' removal;
            # past this the arbiter SIGKILLs the worker, and `_child_exit` is the backstop.
            "graceful_timeout": int(grace) + 12,
            "timeout": 0,  # a WebSocket is a long request; the worker's heartbeat is separate
            "loglevel": self.log_level,
            "accesslog": None,
            "when_ready": self._when_ready,
            "post_worker_init": self._post_worker_init,
            "child_exit": self._child_exit,
            "worker_int": lambda worker: None,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Runs in the worker (after gunicorn's fork), so no thread exists before the fork."""
        from . import create_app

        return create_app(self.app_config)

    def _when_ready(self, arbiter: Any) -> None:
        cfg = self.app_config
        print(
            f"IPC Explorer running at {display_url(cfg['HOST'], cfg['PORT'], cfg['TOKEN'])}",
            flush=True,
        )

    def _post_worker_init(self, worker: Any) -> None:
        """Route the worker's stop signals through one stopper thread."""
        stop = threading.Event()

        def handle(signum: int, frame: Any) -> None:  # only enqueue (gunicorn's arbiter rule)
            worker.alive = False
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, handle)

        def stopper() -> None:
            while not stop.wait(0.5):
                # gunicorn stopping the worker another way, or the arbiter gone (killed):
                if not worker.alive or os.getppid() != worker.ppid:
                    break
            from . import shutdown_app

            for job in shutdown_app(worker.wsgi, self.app_config["SHUTDOWN_GRACE"]):
                print(stopped_line(job), flush=True)

        # Not a daemon: the worker process waits for the children to be gone before it exits.
        threading.Thread(target=stopper, name="explorer-stopper", daemon=False).start()

    def _child_exit(self, arbiter: Any, worker: Any) -> None:
        """The arbiter's backstop when a worker is gone: whatever it left in its job cgroups
        (it was SIGKILLed past the graceful timeout, or crashed, before its own stop ended) is
        killed now, a `setsid` grandchild included, instead of living on as an orphan."""
        if not self.app_config.get("CGROUPS", True):
            return
        from .cgroups import CgroupUnavailable, find_hierarchies, sweep_stale

        try:
            hierarchies = find_hierarchies()
        except (CgroupUnavailable, OSError):
            return
        killed = set().union(*(sweep_stale(hierarchy) for hierarchy in hierarchies))
        if killed:
            print(
                f"worker {worker.pid} ended without stopping its jobs; killed the "
                f"{len(killed)} process(es) left in their cgroups",
                flush=True,
            )


def stopped_line(job: Any) -> str:
    """``stopped #3 sleep 60 (pid 1234): SIGTERM``: what stopping did to one job's child."""
    spec, child = job.spec, job.child
    label = " ".join([spec.program or spec.command, *spec.args])
    if len(label) > 60:
        label = label[:57] + "..."
    sig = child.signal_code if child is not None else None
    code = child.exit_code if child is not None else None
    ended = sig or (f"exit code {code}" if code is not None else "still running")
    return f"stopped #{job.number} {label} (pid {job.pid}): {ended}"


def port_problem(host: str, port: int) -> str | None:
    """Why gunicorn could not listen on host:port, as one line, or None when it can.

    gunicorn would retry a taken port five times over five seconds and end in a traceback;
    a newcomer needs one line that says what to do.
    """
    try:
        error = bind_error(host, port)
    except socket.gaierror as exc:
        return f"cannot listen on {host!r}: {exc.strerror}; try --host 127.0.0.1"
    if error is None:
        return None
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use; try `make run PORT={free_port_after(host, port)}`"
    if error.errno == errno.EACCES:
        return f"port {port} needs root (ports below 1024 are privileged); try `make run PORT=8000`"
    return f"cannot listen on {host}:{port}: {error.strerror}"


def bind_error(host: str, port: int) -> OSError | None:
    """Bind host:port as gunicorn will (SO_REUSEADDR) and let go: the error, or None.

    :raises socket.gaierror: `host` is no address.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc
    return None


def free_port_after(host: str, port: int) -> int:
    """The first port after `port` that is free on `host` now (a suggestion)."""
    for candidate in range(port + 1, min(port + 100, 65536)):
        if bind_error(host, candidate) is None:
            return candidate
    return port + 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agent"]:
        from .agent import main as agent_main

        return agent_main(argv[1:])
    args = parse_args(argv)
    problem = port_problem(args.host, args.port)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return 1
    config = app_config(args)
    config["TOKEN"] = args.token or new_token()
    if args.redis:
        from .agent import check_redis
        from .services import runner_name

        # With several workers each name gets the worker's pid: none can clash.
        problem = check_redis(args.redis, runner_name(config) if args.workers == 1 else None)
        if problem:
            print(f"ipc-explorer: {problem}", file=sys.stderr, flush=True)
            return 2
    ExplorerServer(config, args.threads, args.log_level).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
