"""The app's long-lived objects, one set per app (no module-level state, so two apps in one
test process do not share jobs or events)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .events import EventBus
from .feedhub import FeedHub, HubLimits
from .frames import FrameCaptures
from .heartbeat import Heartbeat
from .jobs import Job, JobService
from .lab import LabRunner
from .programs_index import ProgramIndex
from .security import CommandPolicy

EXTENSION = "ipc_explorer"


@dataclass
class Services:
    bus: EventBus
    jobs: JobService
    programs: ProgramIndex
    policy: CommandPolicy
    heartbeat: Heartbeat
    lab: LabRunner
    frames: FrameCaptures
    feeds: FeedHub

    @classmethod
    def build(cls, config: dict) -> Services:
        bus = EventBus(
            max_events_per_job=config["MAX_EVENTS_PER_JOB"],
            max_bytes_per_job=config["MAX_HISTORY_BYTES_PER_JOB"],
            subscriber_events=config["SUBSCRIBER_QUEUE_EVENTS"],
            subscriber_bytes=config["SUBSCRIBER_QUEUE_BYTES"],
            coalesce_bytes=config["COALESCE_BYTES"],
            max_replay=config["MAX_REPLAY_EVENTS"],
        )
        programs = ProgramIndex(config["CATALOG"])
        policy = CommandPolicy(
            config["ALLOWED_COMMANDS"],
            config["ALLOW_ANY_COMMAND"],
            programs.resolve,
            config["COMMAND_ARGUMENTS"],
        )
        return cls(
            bus=bus,
            jobs=JobService(
                config, bus, is_shipped=lambda path, runtime: bool(programs.resolve(path, runtime))
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
        )

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    def shutdown(self, grace: float | None = None) -> list[Job]:
        """Stop the children (their last events still reach the feeds), then close every
        feed with 1001 (going away). Returns the jobs whose children were still running."""
        self.heartbeat.stop()
        self.lab.shutdown()
        stopped = self.jobs.shutdown(grace)
        self.feeds.stop()
        return stopped


def services() -> Services:
    return current_app.extensions[EXTENSION]
