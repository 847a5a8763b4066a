"""The job registry interface: where job records live, and which runners there are.

A *runner* is a process that starts children: every server process is one, and so is each
``ipc-explorer agent``. A job's child lives in its runner (its `Job` object, with the child,
stays there); every other process sees the job as a *record*, the JSON of ``Job.to_dict()``.

Two implementations, as for the event bus (``bus.py``):

* `MemoryRegistry`, the embedded default: this process is the only runner, records are the
  live `Job` objects themselves;
* `redis_registry.RedisRegistry`: records in Redis, written by each job's runner (at start,
  then with every batch of its events, in the same atomic step), runner heartbeats, and the
  ``lost`` verdict for the jobs of a runner that stopped answering.

The rest of webapp asks this interface and never knows which one it has.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol


class LocalJob(Protocol):
    """What the registry needs of a job this runner started (`jobs.Job`)."""

    id: str
    pid: int | None

    @property
    def live(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...

    def output_dict(self) -> dict[str, Any]: ...


#: What a runner says about itself (``GET /api/hosts``): live children, capacity, ...
RunnerInfo = Callable[[], dict[str, Any]]


def runner_info(name: str, kind: str, live: int, capacity: int, **extra: Any) -> dict[str, Any]:
    """One runner as ``GET /api/hosts`` lists it (before its heartbeat time is added)."""
    return {
        "name": name,
        "kind": kind,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "live_children": live,
        "capacity": capacity,
        **extra,
    }


class JobRegistry(ABC):
    """Job records of every runner; this runner's own jobs; the runners themselves."""

    #: This process's runner name (``host`` of its jobs and events).
    runner: str

    @abstractmethod
    def next_number(self) -> int:
        """A job number no runner sharing the registry has given (``j<number>``)."""

    @abstractmethod
    def add(self, job: LocalJob) -> None:
        """A job this runner is starting: from now on every process sees its record."""

    @abstractmethod
    def drop(self, job_id: str) -> None:
        """Forget a job's record (the bus forgets its events)."""

    @abstractmethod
    def get(self, job_id: str) -> dict[str, Any] | None:
        """The record of any runner's job, None if there is no such job."""

    @abstractmethod
    def list(self) -> list[dict[str, Any]]:
        """Every record, oldest job first."""

    @abstractmethod
    def output(self, job_id: str) -> dict[str, Any] | None:
        """The job's kept stdout and stderr: ``{"stdout", "stderr", "bytes", "truncated",
        "limit"}``; None if there is no such job."""

    @abstractmethod
    def runners(self) -> list[dict[str, Any]]:
        """Every live runner (`runner_info` plus ``last_heartbeat``), this one first."""

    def alive(self, runner: str) -> bool:
        """Whether `runner` is live (its heartbeat is recent)."""
        return any(r["name"] == runner for r in self.runners())

    @abstractmethod
    def start(self) -> None:
        """Join: from now on this runner is listed and watched (and watches the others)."""

    @abstractmethod
    def close(self) -> None:
        """Leave (a runner that stops cleanly is not declared lost)."""


class MemoryRegistry(JobRegistry):
    """This process is the only runner; its jobs are the records."""

    def __init__(self, runner: str, info: RunnerInfo) -> None:
        self.runner = runner
        self._info = info
        self._lock = threading.Lock()
        self._jobs: dict[str, LocalJob] = {}
        self._numbers = itertools.count(1)

    def next_number(self) -> int:
        with self._lock:
            return next(self._numbers)

    def add(self, job: LocalJob) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def _job(self, job_id: str) -> LocalJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def get(self, job_id: str) -> dict[str, Any] | None:
        job = self._job(job_id)
        return None if job is None else job.to_dict()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [job.to_dict() for job in jobs]

    def output(self, job_id: str) -> dict[str, Any] | None:
        job = self._job(job_id)
        return None if job is None else job.output_dict()

    def runners(self) -> list[dict[str, Any]]:
        return [{**self._info(), "last_heartbeat": time.time(), "heartbeat_age": 0.0}]

    def start(self) -> None:
        return None  # nobody else to join

    def close(self) -> None:
        return None
