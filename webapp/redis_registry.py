"""The job registry on Redis: records every process can read, runner heartbeats, ``lost``.

* **Records.** A job's runner writes its record (``Job.to_dict()`` as JSON) when the job is
  added, then with every batch of the job's events, in the same publish script
  (`RedisEventBus.record_source`): a client that sees a job's ``close`` event and then asks
  any server for the job sees it closed.
* **Heartbeats.** Each runner stamps its entry every `beat` seconds with Redis's own clock
  (hosts' clocks may differ), with what ``GET /api/hosts`` shows: pid, hostname, live
  children, capacity. A name another live runner holds is refused (`RunnerNameTaken`).
* **Lost.** Every runner also looks, each beat, for runners whose last heartbeat is older
  than `ttl`; one script declares each of them lost exactly once (whoever runs it first):
  each of its live jobs gets a ``lost`` event and its record the state ``lost``, so no job
  hangs as "running" forever. With the defaults (beat 2 s, ttl 8 s) a dead runner is noticed
  within about 10 s. A runner that was declared lost only because it could not reach Redis
  rejoins when it can, and puts its records back (its jobs are its own again).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from .errors import StoreUnavailable
from .events import encode
from .redis_bus import RedisEventBus
from .redis_store import RedisScriptError, RedisStore
from .registry import JobRegistry, LocalJob, RunnerInfo

HEARTBEAT = 2.0
TTL = 8.0


class RunnerNameTaken(Exception):
    """Another live runner holds the name this one wants."""


def _pid_field(job: LocalJob) -> str:
    """The live hash's value: the pid ("null" while starting), "" once the job is over."""
    if not job.live:
        return ""
    return "null" if job.pid is None else str(job.pid)


class RedisRegistry(JobRegistry):
    """`JobRegistry` on a `RedisStore`, sharing the bus's publish script for record updates.
    `start()` claims the runner name.
    """

    def __init__(
        self,
        store: RedisStore,
        bus: RedisEventBus,
        runner: str,
        info: RunnerInfo,
        *,
        output_cap: int,
        jobs_kept: int = 100,
        beat: float = HEARTBEAT,
        ttl: float = TTL,
    ) -> None:
        self.store = store
        self.bus = bus
        self.runner = runner
        self.output_cap = output_cap
        self.jobs_kept = jobs_kept
        self.beat = beat
        self.ttl = ttl
        self._info = info
        self._instance = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._local: dict[str, LocalJob] = {}
        self._stop = threading.Event()
        bus.record_source = self.records_for
        store.on_new_epoch(self._rejoin)
        self._thread = threading.Thread(target=self._run, name="runner-heartbeat", daemon=True)

    def start(self) -> None:
        """Claim the name (a clash is refused here, at start), then beat and watch."""
        self._heartbeat()
        self._thread.start()

    # ---- records ----------------------------------------------------------------------------

    def next_number(self) -> int:
        return int(self.store.call(self.store.client.incr, self.store.key("jobno")))

    def add(self, job: LocalJob) -> None:
        with self._lock:
            self._local[job.id] = job
        self._put([job])

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._local.pop(job_id, None)
        self.store.run("forget", job_id)

    def records_for(self, job_ids: list[str]) -> list[tuple[str, bytes, str, str]]:
        """(job, record JSON, runner, pid field) of the jobs among `job_ids` that run here
        (for the bus's publish script)."""
        with self._lock:
            jobs = [self._local[j] for j in job_ids if j in self._local]
        return [(job.id, encode(job.to_dict()), self.runner, _pid_field(job)) for job in jobs]

    def _put(self, jobs: list[LocalJob]) -> None:
        args: list[Any] = [len(jobs)]
        for job in jobs:
            args += [job.id, encode(job.to_dict()), self.runner, _pid_field(job)]
        self.store.run("put", *args)

    def get(self, job_id: str) -> dict[str, Any] | None:
        client, key = self.store.client, self.store.key
        pipe = client.pipeline(transaction=False)
        pipe.hget(key("rec"), job_id)
        pipe.hget(key("lost"), job_id)
        record, lost = self.store.call(pipe.execute)
        if record is None:
            return None
        return _merge(record, lost)

    def list(self) -> list[dict[str, Any]]:
        client, key = self.store.client, self.store.key
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(key("rec"))
        pipe.hgetall(key("lost"))
        records, lost = self.store.call(pipe.execute)
        merged = [_merge(text, lost.get(job)) for job, text in records.items()]
        return sorted(merged, key=lambda r: (r.get("started_at") or 0, r["id"]))

    def output(self, job_id: str) -> dict[str, Any] | None:
        client, key = self.store.client, self.store.key
        pipe = client.pipeline(transaction=False)
        pipe.hget(key("rec"), job_id)
        pipe.get(key(f"o:stdout:{job_id}"))
        pipe.get(key(f"o:stderr:{job_id}"))
        pipe.hexists(key("otrunc"), job_id)
        record, out, err, truncated = self.store.call(pipe.execute)
        if record is None:
            return None
        return {
            "stdout": (out or b"").decode("utf-8", "replace"),
            "stderr": (err or b"").decode("utf-8", "replace"),
            "bytes": json.loads(record).get("output_bytes", 0),
            "truncated": bool(truncated),
            "limit": self.output_cap,
        }

    # ---- runners ----------------------------------------------------------------------------

    def runners(self) -> list[dict[str, Any]]:
        client, key = self.store.client, self.store.key
        beats = self.store.call(client.zrange, key("runners"), 0, -1, withscores=True)
        pipe = client.pipeline(transaction=False)
        for name, _ in beats:
            pipe.hget(key(f"runner:{name.decode()}"), "info")
        infos = self.store.call(pipe.execute) if beats else []
        now = self.store.server_time()
        found = []
        for (name, beat), info in zip(beats, infos, strict=True):
            entry = json.loads(info) if info else {"name": name.decode()}
            entry["last_heartbeat"] = beat
            entry["heartbeat_age"] = round(max(0.0, now - beat), 3)
            found.append(entry)
        found.sort(key=lambda r: (r["name"] != self.runner, r["name"]))
        return found

    def alive(self, runner: str) -> bool:
        score = self.store.call(self.store.client.zscore, self.store.key("runners"), runner)
        return score is not None

    def _beat(self) -> bool:
        """Stamp this runner's heartbeat; True when it (re)joined.

        :raises RunnerNameTaken: another live runner already has this one's name.
        """
        info = encode(self._info())
        try:
            _now, joined = self.store.run("heartbeat", self.runner, self._instance, info, self.ttl)
        except RedisScriptError as exc:
            message = str(exc)
            if message.startswith("NAMETAKEN"):
                raise RunnerNameTaken(
                    f"a runner named {self.runner!r} is already live ({message[10:]}); "
                    "give this one another name (--name)"
                ) from None
            raise
        return bool(joined)

    def _heartbeat(self) -> None:
        if self._beat():  # declared lost while it could not reach Redis: its jobs are back
            self._put_all()

    def _rejoin(self) -> None:
        """Redis came back empty: join again at once and put back this runner's records."""
        if self._thread.is_alive():  # started
            self._beat()
        self._put_all()

    def _put_all(self) -> None:
        with self._lock:
            jobs = list(self._local.values())
        if jobs:
            self._put(jobs)

    def _run(self) -> None:
        while not self._stop.wait(self.beat):
            try:
                self._heartbeat()
                self.store.run("reap", self.ttl, *self.bus.limits, self.jobs_kept)
            except StoreUnavailable:
                continue  # health() says so; the next beat tries again
            except RunnerNameTaken as exc:  # another took our name while we were away
                print(f"webapp: {exc}", flush=True)
            except RedisScriptError as exc:
                print(f"webapp: Redis refused the heartbeat: {exc}", flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.beat + 5)
        try:
            self.store.run("leave", self.runner, self._instance, self.jobs_kept)
        except (StoreUnavailable, RedisScriptError):
            pass  # it will be declared lost; it had no live job left (they were stopped)


def live_runner(store: RedisStore, name: str, ttl: float = TTL) -> str | None:
    """What the live runner called `name` says about itself (JSON), None if there is none."""
    beat = store.call(store.client.zscore, store.key("runners"), name)
    if beat is None or store.server_time() - beat >= ttl:
        return None
    info = store.call(store.client.hget, store.key(f"runner:{name}"), "info")
    return info.decode() if info else "{}"


def _merge(record: bytes, lost: bytes | None) -> dict[str, Any]:
    data = json.loads(record)
    if lost is not None:
        data["state"] = "lost"
        data["lost"] = json.loads(lost)
    return data
