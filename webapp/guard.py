"""A job's guard: its child starts confined (confine.py) in a cgroup of its own (cgroups.py),
and the job is sure to end: a deadline, escalation to SIGKILL, and no straggler that keeps it
open for ever.

How a job that is ended (killed through the API, or past its deadline) comes to `close`::

    kill(sig) / deadline ──▶ sig (the deadline: the job's kill_signal, default SIGTERM) once to
                             each process: the process group, and what of the cgroup left it
      deadline only: +grace, the main child still alive ──▶ SIGKILL the group and the cgroup
                             (a child that ignores SIGTERM does not run for ever)
    the main child exits (after a kill, the deadline, or ipc's own kill: exec's max_buffer)
      +grace ──▶ SIGKILL what is left in the cgroup (a `setsid` grandchild holding the pipes)
      +grace, not closed yet ──▶ abandon the pipes: `close` comes and the slot is free
                                 (without a cgroup this is the only remedy left)
    close ──▶ SIGKILL anything still in the cgroup, remove the cgroup

A job whose main child exits by itself is not hurried: a grandchild may still be writing its
output, and the job stays open until it is done (or the deadline comes).

The deadline is the request's `timeout` (any kind), else the server's ``--max-job-seconds``.
Timers run on ipc's reactor thread (``call_later``); every step is a few system calls.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipc
from ipc.reactor import TimerHandle, get_reactor

from .cgroups import CgroupTree, CgroupUnavailable, Hierarchy, JobCgroup, find_hierarchies
from .confine import Confinement, Needs, Plan, interpreter_needs, resolve_program, steers_code

MiB = 1024 * 1024
#: How long a closed job's cgroup removal is retried while its dying tasks leave.
_REMOVE_RETRY = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

#: (path, runtime) -> whether it is one of the shipped programs.
IsShipped = Callable[[str, str], bool]


class CannotConfine(Exception):
    """A job that cannot run as the confinement requires; the message says what to change."""


class Guards:
    """The confinement, the cgroup tree and the grace period every job's guard shares.

    :param config: the app's settings (CHILD_*, JOB_*, CGROUPS, KEEP_PRIVILEGES).
    :param is_shipped: tells a shipped program's path from any other file.
    """

    def __init__(self, config: Mapping[str, Any], is_shipped: IsShipped | None = None) -> None:
        self.config = config
        self.confinement = Confinement.from_config(config)
        self.grace = float(config["JOB_KILL_GRACE"])
        self.is_shipped = is_shipped or (lambda path, runtime: False)
        self._lock = threading.Lock()
        self._tree: CgroupTree | None = None
        self._hierarchies: list[Hierarchy] = []
        self.cgroup_problem: str | None = None
        if not config["CGROUPS"]:
            self.cgroup_problem = "turned off (--no-cgroups)"
        else:
            try:
                self._hierarchies = find_hierarchies()
            except (CgroupUnavailable, OSError) as exc:
                self.cgroup_problem = str(exc)

    # ---- per job ----------------------------------------------------------------------------

    def guard(self, job_id: str, spec: Any) -> JobGuard:
        """A guard for a job about to start (`spec` is its `JobSpec`).

        :raises CannotConfine: the request cannot work confined (the caller answers 400).
        :raises OSError: the job's cgroup cannot be made (the caller answers 503).
        """
        plan = self.confinement.plan(self.needs(spec), spec.env)
        python_fork = spec.kind == "fork" and spec.runtime != "node"
        if python_fork and spec.transport == "unix" and plan.user != self.confinement.server_user:
            raise CannotConfine(
                f"transport 'unix' cannot reach a Python child that runs as {plan.user}: its "
                "socket lives in a directory only the server's user may enter; use 'auto', "
                "'socketpair', 'pipe' or 'tcp'"
            )
        cgroup = None
        tree = self._cgroup_tree()
        if tree is not None:
            cgroup = tree.create(
                job_id,
                pids_max=int(self.config["JOB_PIDS"]),
                memory_max=int(self.config["JOB_MEMORY_MB"]) * MiB,
            )
        timeout = float(spec.timeout or 0) or float(self.config["MAX_JOB_SECONDS"] or 0)
        return JobGuard(self, job_id, plan, cgroup, spec.kill_signal or "SIGTERM", timeout)

    def needs(self, spec: Any) -> Needs:
        """What the job's child must run and read, and whether it is a shipped program."""
        plain_env = not steers_code(spec.env)
        if spec.kind == "fork":
            node = spec.runtime == "node"
            interpreter = (shutil.which("node") or "node") if node else sys.executable
            return interpreter_needs(interpreter, spec.argv[0], shipped=plain_env)
        argv = ["/bin/sh", "-c", spec.command] if spec.shell else spec.argv
        program = resolve_program(argv[0], spec.env)
        runtime = _runtime_of(program)
        if runtime is not None and len(argv) > 1 and self.is_shipped(argv[1], runtime):
            return interpreter_needs(program, argv[1], shipped=plain_env)
        return Needs(execute=(program,))

    def _cgroup_tree(self) -> CgroupTree | None:
        """The server's cgroup subtree, made on the first job (an app that never runs one
        leaves nothing behind)."""
        with self._lock:
            if self._tree is None and self._hierarchies and self.cgroup_problem is None:
                try:
                    self._tree = CgroupTree(self._hierarchies)
                except CgroupUnavailable as exc:
                    self.cgroup_problem = str(exc)
                else:
                    atexit.register(self._tree.close)
            return self._tree

    def cgroup_finished(self, cgroup: JobCgroup) -> None:
        if self._tree is not None:
            self._tree.forget(cgroup)

    # ---- server-wide ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For /api/status: who the children run as, their limits, their cgroups."""
        info = self.confinement.status()
        if self.cgroup_problem is not None:
            cgroups: dict[str, Any] = {
                "enabled": False,
                "reason": self.cgroup_problem,
                "fallback": "a killed job whose main child has exited closes its pipes "
                f"{self.grace} s later (a setsid grandchild may keep running)",
            }
        else:
            cgroups = {
                "enabled": True,
                "version": self._hierarchies[0].version,
                "controllers": sorted({c for h in self._hierarchies for c in h.controllers}),
                "pids_max": self.config["JOB_PIDS"],
                "memory_max_bytes": int(self.config["JOB_MEMORY_MB"]) * MiB,
            }
        info["cgroups"] = cgroups
        info["max_job_seconds"] = self.config["MAX_JOB_SECONDS"]
        info["kill_grace_seconds"] = self.grace
        return info

    def shutdown(self) -> list[str]:
        """Kill every job cgroup's processes and remove the subtree; returns what is left."""
        with self._lock:
            tree, self._tree = self._tree, None
        if tree is None:
            return []
        atexit.unregister(tree.close)
        return tree.close()


def _runtime_of(program: str) -> str | None:
    real = os.path.realpath(program)
    if real == os.path.realpath(sys.executable):
        return "python"
    node = shutil.which("node")
    if node is not None and real == os.path.realpath(node):
        return "node"
    return None


class JobGuard:
    """One job's confinement and end. `kill` comes from request threads, the rest from
    ipc's reactor thread; the flags are under `_lock`."""

    def __init__(
        self,
        guards: Guards,
        job_id: str,
        plan: Plan,
        cgroup: JobCgroup | None,
        kill_signal: str,
        deadline: float,
    ) -> None:
        self._guards = guards
        self.job_id = job_id
        self.plan = plan
        self.cgroup = cgroup
        self.grace = guards.grace
        self.kill_signal = kill_signal
        self.deadline = deadline  # seconds from the start; 0: none
        self.child: ipc.ChildProcess | None = None
        self.killed = False
        self.timed_out = False
        self.abandoned = False
        self.oom_kills = 0
        self._lock = threading.Lock()
        self._exited = False
        self._closed = False
        self._stragglers_scheduled = False
        self._timers: list[TimerHandle] = []

    @property
    def wrapper(self) -> list[str]:
        """The argv prefix the child starts through: join the cgroup, then the plan's."""
        join = self.cgroup.join_argv() if self.cgroup is not None else []
        return [*join, *self.plan.wrapper]

    @property
    def env(self) -> dict[str, str] | None:
        return self.plan.env

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.plan.to_dict(),
                "cgroups": [str(d) for d in self.cgroup.dirs] if self.cgroup is not None else [],
                "oom_kills": self.oom_kills,
                "abandoned_pipes": self.abandoned,
            }

    # ---- the job's life ---------------------------------------------------------------------

    def started(self, child: ipc.ChildProcess) -> None:
        self.child = child
        if self.deadline > 0:
            self._later(self.deadline, self._on_deadline)

    def child_exited(self) -> None:
        """Reactor thread: the main child exited. After a kill, the rest has `grace` to go.

        A kill is ours (`kill`, the deadline) or one the child got through ipc itself
        (`child.killed`: exec's kill when its output passed max_buffer): either way the job
        is being ended, and what it left behind goes after the grace.
        """
        child = self.child
        with self._lock:
            self._exited = True
            ending = self.killed or self.timed_out or (child is not None and child.killed)
        if ending:
            self._schedule_stragglers()

    def kill(self, sig: str) -> bool:
        """Send `sig` once to each process of the job: its process group, and what of its
        cgroup has left the group (a `setsid` grandchild).

        Returns whether any process got it. After it, once the main child has exited, what is
        left of the job is ended after the grace period.
        """
        with self._lock:
            self.killed = True
        return self._signal(sig)

    def _signal(self, sig: str | int) -> bool:
        """`sig` to the process group (through the child, which knows whether it is still
        there; a child that has not joined its cgroup yet is reached too), then to each
        process of the cgroup outside that group: every process once. (Signals do not always
        merge: a real-time one, or a TERM that a handler took in between, counts twice.)"""
        group = None
        child = self.child
        if child is not None and child.returncode is None and child.kill(sig):
            group = child.pid
        delivered = group is not None
        if self.cgroup is not None:
            sent = self.cgroup.signal(ipc.signal_number(sig), except_group=group)
            delivered = sent > 0 or delivered
        with self._lock:
            exited = self._exited
        if exited:
            self._schedule_stragglers()
        return delivered

    def closed(self) -> None:
        """Reactor thread (or a failed start): the job is over; so is its cgroup. Once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        if self.cgroup is not None:
            with self._lock:
                self.oom_kills = self.cgroup.oom_kills()
            if self.cgroup.pids():
                self.cgroup.kill()  # a process that closed its pipes and stayed: not past its job
            self._remove_cgroup(0)

    def _remove_cgroup(self, attempt: int) -> None:
        assert self.cgroup is not None
        if self.cgroup.remove():
            self._guards.cgroup_finished(self.cgroup)
        elif attempt < len(_REMOVE_RETRY):  # dying tasks are still listed for a moment
            self.cgroup.kill()
            get_reactor().call_later(
                _REMOVE_RETRY[attempt], lambda: self._remove_cgroup(attempt + 1)
            )
        # else: left for Guards.shutdown(), which waits for it

    # ---- timers (reactor thread) ------------------------------------------------------------

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            self._timers.append(get_reactor().call_later(delay, fn))

    def _on_deadline(self) -> None:
        """Past its time: the polite signal now, SIGKILL after the grace if it is ignored."""
        if self._is_closed():
            return
        with self._lock:
            self.timed_out = True
        self._signal(self.kill_signal)
        self._later(self.grace, self._escalate)

    def _escalate(self) -> None:
        child = self.child
        if self._is_closed() or child is None or child.returncode is not None:
            return  # it went; stragglers are handled from its exit
        child.kill("SIGKILL")
        if self.cgroup is not None:
            self.cgroup.kill()

    def _schedule_stragglers(self) -> None:
        with self._lock:
            if self._stragglers_scheduled:
                return
            self._stragglers_scheduled = True
        self._later(self.grace, self._end_stragglers)

    def _end_stragglers(self) -> None:
        """The main child is gone after a kill; whatever still runs is past its job."""
        if self._is_closed():
            return
        if self.cgroup is not None:
            self.cgroup.kill()
            self._later(self.grace, self._abandon)
        else:
            self._abandon()

    def _abandon(self) -> None:
        if self._is_closed() or self.child is None:
            return
        with self._lock:
            self.abandoned = True
        self.child.abandon_streams()

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed


__all__ = ["CannotConfine", "Guards", "JobGuard"]
