"""What the API asks of jobs, wherever their children run.

A request can arrive at any server; the job's child lives in one runner (a server process or
an ``agent``). `JobDirectory` reads records from the registry, acts on this runner's own jobs
directly, and routes everything else to the owning runner (``control.py``). It never asks
which implementation it has: in memory, every job is this runner's.

The command policy is checked where a request arrives *and* on the runner that will start the
child (with that runner's own policy, programs and paths): a server cannot make an agent run
what the agent does not allow, and an agent is not the only line of defence either.
"""

from __future__ import annotations

from typing import Any

from . import validation
from .bus import EventBus
from .control import Control
from .errors import ApiError
from .jobs import JobService
from .jsoncheck import Checker, ShapeError
from .programs_index import ProgramIndex
from .registry import JobRegistry
from .security import CommandPolicy


class JobDirectory:
    """Finds each job's runner and acts on the job there."""

    def __init__(
        self,
        jobs: JobService,
        registry: JobRegistry,
        control: Control,
        bus: EventBus,
        policy: CommandPolicy,
        programs: ProgramIndex,
        shapes: Checker,
    ) -> None:
        self.jobs = jobs
        #: The request schemas: a start routed here came through Redis, not through this
        #: process's HTTP layer, so its body is checked again here.
        self.shapes = shapes
        self.registry = registry
        self.control = control
        self.bus = bus
        self.policy = policy
        self.programs = programs
        self.runner = registry.runner

    # ---- reading ----------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        return self.registry.list()

    def get(self, job_id: str) -> dict[str, Any]:
        """:raises ApiError: 404 when no runner has such a job."""
        record = self.registry.get(job_id)
        if record is None:
            raise ApiError(404, f"no job {job_id!r}; GET /api/jobs lists the jobs")
        return record

    def output(self, job_id: str) -> dict[str, Any]:
        output = self.registry.output(job_id)
        if output is None:
            raise ApiError(404, f"no job {job_id!r}; GET /api/jobs lists the jobs")
        return output

    def hosts(self) -> list[dict[str, Any]]:
        return self.registry.runners()

    # ---- acting -----------------------------------------------------------------------------

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start the job `body` describes: here, or on the runner its ``host`` names.

        :raises ApiError: 400 for a bad request or an unknown runner, 403 for a command the
            policy (here or on the runner) refuses, 429 at the runner's limit.
        """
        host = body.get("host")
        if host is not None and (not isinstance(host, str) or not host):
            raise ApiError(400, "'host' must be a runner's name (GET /api/hosts lists them)")
        body = {k: v for k, v in body.items() if k != "host"}
        if host is None or host == self.runner:
            return self.handle("start", {"body": body})
        # Checked here too; 'cwd' names a directory on the runner's host, so it is checked
        # there only.
        validation.parse_job(
            {k: v for k, v in body.items() if k != "cwd"},
            self.jobs.config,
            self.policy,
            self.programs,
        )
        if not self.registry.alive(host):
            names = ", ".join(r["name"] for r in self.registry.runners()) or "none"
            raise ApiError(
                400, f"no live runner named {host!r}; the runners are: {names} (GET /api/hosts)"
            )
        return self.control.call(host, "start", {"body": body})

    def kill(self, job_id: str, sig: str) -> tuple[dict[str, Any], bool]:
        result = self._act(job_id, "kill", {"signal": sig})
        return result["job"], result["delivered"]

    def send(self, job_id: str, message: Any) -> bool:
        return self._act(job_id, "send", {"message": message})

    def write_stdin(self, job_id: str, data: str, end: bool) -> int:
        return self._act(job_id, "stdin", {"data": data, "end": end})

    def forget(self, job_id: str) -> None:
        record = self.get(job_id)
        owner = record.get("host", self.runner)
        if owner != self.runner and (record["state"] == "lost" or not self.registry.alive(owner)):
            # Its runner is gone: nobody else holds it, the record is all there is.
            self.registry.drop(job_id)
            self.bus.forget(job_id)
            return
        self._act(job_id, "forget", {}, record)

    def _act(
        self, job_id: str, op: str, args: dict[str, Any], record: dict[str, Any] | None = None
    ) -> Any:
        record = record or self.get(job_id)
        owner = record.get("host", self.runner)
        if owner == self.runner:
            return self.handle(op, {"job": job_id, **args})
        if record["state"] == "lost" or not self.registry.alive(owner):
            raise ApiError(
                409,
                f"job {job_id} is lost: its runner {owner!r} stopped answering, so nothing "
                "reaches its child any more (GET /api/hosts lists the live runners)",
            )
        return self.control.call(owner, op, {"job": job_id, **args})

    def handle(self, op: str, args: dict[str, Any]) -> Any:
        """Do `op` on this runner: a request made here, or one routed to it."""
        jobs = self.jobs
        if op == "start":
            try:
                body = self.shapes.check(self.shapes.components["JobRequest"], args["body"])
            except ShapeError as exc:
                raise ApiError(400, str(exc)) from None
            spec = validation.parse_job(body, jobs.config, self.policy, self.programs)
            return jobs.start(spec).to_dict()
        job = jobs.get(args["job"])
        if op == "kill":
            delivered = jobs.kill(job, args["signal"])
            return {"job": job.to_dict(), "delivered": delivered}
        if op == "send":
            return jobs.send(job, args["message"])
        if op == "stdin":
            return jobs.write_stdin(job, args["data"].encode(), args["end"])
        if op == "forget":
            jobs.forget(job)
            return None
        raise ApiError(400, f"unknown operation {op!r}")
