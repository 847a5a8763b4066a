"""The app's long-lived objects, one set per app (no module-level state, so two apps in one
test process do not share jobs or events).

`Services.build` is the one place that knows which implementations there are: in memory (the
embedded default) or on Redis (``REDIS_URL`` set: shared by every server process and agent
started with the same URL). Everything else gets the interfaces: `bus.EventBus`,
`registry.JobRegistry`, `control.Control`, and `directory.JobDirectory` on top of them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from .bus import EventBus
from .control import Control, LocalControl
from .directory import JobDirectory
from .events import MemoryEventBus
from .feedhub import FeedHub, HubLimits
from .frames import FrameCaptures
from .heartbeat import Heartbeat
from .jobs import Job, JobService
from .jsoncheck import Checker
from .lab import LabRunner
from .programs_index import ProgramIndex
from .registry import JobRegistry, MemoryRegistry, runner_info
from .schemas import components
from .security import CommandPolicy

EXTENSION = "ipc_explorer"


def runner_name(config: dict[str, Any]) -> str:
    """This process's runner name: ``RUNNER_NAME``, else ``<hostname>:<port>``; with several
    workers each adds its pid (each is a runner of its own, with children of its own)."""
    name = config["RUNNER_NAME"] or f"{socket.gethostname()}:{config['PORT']}"
    if config["WORKERS"] > 1:
        name += f"/{os.getpid()}"
    return name


@dataclass
class Services:
    bus: EventBus
    jobs: JobService
    registry: JobRegistry
    control: Control
    directory: JobDirectory
    programs: ProgramIndex
    policy: CommandPolicy
    heartbeat: Heartbeat
    lab: LabRunner
    frames: FrameCaptures
    feeds: FeedHub
    closers: list[Any] = field(default_factory=list)

    @classmethod
    def build(cls, config: dict[str, Any]) -> Services:
        """The services for `config`.

        :raises StoreUnavailable: ``REDIS_URL`` is set and Redis cannot be reached.
        """
        runner = runner_name(config)
        programs = ProgramIndex(config["CATALOG"])
        policy = CommandPolicy(
            config["ALLOWED_COMMANDS"],
            config["ALLOW_ANY_COMMAND"],
            programs.resolve,
            config["COMMAND_ARGUMENTS"],
        )
        limits = {
            "max_events_per_job": config["MAX_EVENTS_PER_JOB"],
            "max_bytes_per_job": config["MAX_HISTORY_BYTES_PER_JOB"],
            "subscriber_events": config["SUBSCRIBER_QUEUE_EVENTS"],
            "subscriber_bytes": config["SUBSCRIBER_QUEUE_BYTES"],
            "coalesce_bytes": config["COALESCE_BYTES"],
            "max_replay": config["MAX_REPLAY_EVENTS"],
        }

        def info() -> dict[str, Any]:  # called from start() on, once `jobs` exists
            live = jobs.live_count()
            return runner_info(runner, config["RUNNER_KIND"], live, config["MAX_CHILDREN"])

        closers: list[Any] = []
        bus: EventBus
        registry: JobRegistry
        control: Control
        if config["REDIS_URL"]:
            from .control import RedisControl
            from .redis_bus import RedisEventBus
            from .redis_registry import RedisRegistry
            from .redis_store import RedisStore

            store = RedisStore(config["REDIS_URL"])
            output_cap = config["MAX_OUTPUT_PER_JOB"]
            bus = RedisEventBus(store, host=runner, output_cap=output_cap, **limits)
            registry = RedisRegistry(
                store,
                bus,
                runner,
                info,
                output_cap=output_cap,
                jobs_kept=config["MAX_JOBS_KEPT"],
                beat=config["RUNNER_HEARTBEAT"],
                ttl=config["RUNNER_TTL"],
            )
            control = RedisControl(store, runner)
            closers.append(store)
        else:
            bus = MemoryEventBus(host=runner, **limits)
            registry = MemoryRegistry(runner, info)
            control = LocalControl()
        jobs = JobService(
            config,
            bus,
            registry,
            is_shipped=lambda path, runtime: bool(programs.resolve(path, runtime)),
        )
        return cls(
            bus=bus,
            jobs=jobs,
            registry=registry,
            control=control,
            directory=JobDirectory(
                jobs, registry, control, bus, policy, programs, Checker(components(config))
            ),
            programs=programs,
            policy=policy,
            heartbeat=Heartbeat(config["HEARTBEAT_INTERVAL"]),
            lab=LabRunner(bus),
            frames=FrameCaptures(),
            feeds=FeedHub(
                HubLimits(
                    capacity=config["MAX_FEEDS"],
                    max_message=config["WS_MAX_MESSAGE_BYTES"],
                    message_rate=config["WS_MESSAGE_RATE"],
                    ping_interval=config["WS_PING_INTERVAL"],
                )
            ),
            closers=closers,
        )

    def start(self) -> None:
        """Join the other runners (claims the runner name) and answer routed requests.

        :raises RunnerNameTaken: another live runner has this one's name.
        """
        self.registry.start()
        self.control.serve(self.directory.handle)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    def shutdown(self, grace: float | None = None) -> list[Job]:
        """Stop answering routed requests, stop the children (their last events still reach
        the feeds), close every feed with 1001 (going away), leave. Returns the jobs whose
        children were still running."""
        self.heartbeat.stop()
        self.control.close()
        self.lab.shutdown()
        stopped = self.jobs.shutdown(grace)
        self.bus.sync(timeout=2.0)  # (Redis) the children's last events reach the feeds
        self.feeds.stop()
        self.bus.close()
        self.registry.close()
        for closer in self.closers:
            closer.close()
        return stopped


def services() -> Services:
    return current_app.extensions[EXTENSION]
