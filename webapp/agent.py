"""``ipc-explorer agent --redis URL --name NAME``: a runner without a web server.

An agent runs on any host that can reach the shared Redis. It starts the jobs placed on it
(``POST /api/jobs`` with ``"host": "NAME"`` on any server), publishes their events and
records, answers the kill / send / stdin requests routed to it, and beats its heartbeat; if it
dies, the servers declare its live jobs lost within about 10 s. It checks the command policy
itself, with its own allowlist (``--allow-any-command`` only on a machine you own).

Stopping (Ctrl-C or SIGTERM): the handlers only set an event; the main thread then stops
answering, TERMs (then KILLs) every child, sends their last events and leaves.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from .__main__ import (
    _add_confinement_args,
    _check_confinement_args,
    add_redis_argument,
    check_redis_url,
    confinement_config,
)
from .config import DEFAULTS, build_config
from .errors import StoreUnavailable


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ipc-explorer agent",
        description="Run jobs for IPC Explorer servers that share a Redis, without a web server.",
    )
    add_redis_argument(parser, "the agent refuses to start")
    parser.add_argument("--name", required=True, help="this runner's name, unique among them")
    parser.add_argument(
        "--max-children",
        type=int,
        default=DEFAULTS["MAX_CHILDREN"],
        help="children alive at once (default %(default)s)",
    )
    parser.add_argument(
        "--allow-any-command",
        action="store_true",
        help="let spawn/exec run any command here (remote code execution for whoever can "
        "reach a server: only on a machine you own)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULTS["SHUTDOWN_GRACE"],
        help="seconds between TERM and KILL for the children at stop (default %(default)s)",
    )
    _add_confinement_args(parser)  # an agent's children are confined as a server's are
    args = parser.parse_args(argv)
    if not args.redis:
        parser.error("--redis URL is required (or set IPC_EXPLORER_REDIS)")
    if args.max_children < 1:
        parser.error("--max-children must be at least 1")
    if args.grace < 0:
        parser.error("--grace must be >= 0")
    _check_confinement_args(parser, args)
    check_redis_url(parser, args.redis)
    return args


def check_redis(url: str, name: str | None) -> str | None:
    """What stops a runner called `name` from joining through `url`, said plainly; None when
    nothing does."""
    from .redis_registry import live_runner
    from .redis_store import RedisStore

    store = RedisStore(url)
    try:
        store.ensure_epoch()
        holder = live_runner(store, name) if name else None
    except StoreUnavailable as exc:
        return exc.message
    finally:
        store.close()
    if holder is not None:
        return f"a runner named {name!r} is already live ({holder}); give this one another --name"
    return None


def agent_config(args: argparse.Namespace) -> dict[str, Any]:
    return build_config(
        {
            "REDIS_URL": args.redis,
            "RUNNER_NAME": args.name,
            "RUNNER_KIND": "agent",
            "MAX_CHILDREN": args.max_children,
            "ALLOW_ANY_COMMAND": args.allow_any_command,
            "SHUTDOWN_GRACE": args.grace,
            **confinement_config(args),
        }
    )


def main(argv: list[str]) -> int:
    from .redis_registry import RunnerNameTaken
    from .redis_store import redact
    from .services import Services

    args = parse_args(argv)
    problem = check_redis(args.redis, args.name)
    if problem:
        print(f"ipc-explorer agent: {problem}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:  # only enqueue
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    try:
        services = Services.build(agent_config(args))
        services.start()
    except (StoreUnavailable, RunnerNameTaken) as exc:
        print(f"ipc-explorer agent: {exc}", file=sys.stderr, flush=True)
        return 2
    print(
        f"IPC Explorer agent {args.name} running (Redis {redact(args.redis)}, "
        f"up to {args.max_children} children)",
        flush=True,
    )
    stop.wait()
    services.shutdown(args.grace)
    return 0
