"""``/api/openapi.json`` describes every ``/api`` route truly, and the live server holds
against what a fuzzer makes of it.

The description is built from the routes (openapi.py) and the request shapes that also drive
validation (schemas.py), so the first tests check the build: every route is there, every
reference resolves. Then schemathesis generates requests from the document, valid ones and
ones that break it, for every operation against a real gunicorn server: no answer may be a 5xx
and none may break the declared answer schema, status code or content type; a request that
breaks the schema must be refused with a 4xx.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from server import LiveServer, ThreadServer
from webtest import wait_for

FLASK_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
#: Examples per operation and mode: enough to reach every field, few enough to stay fast.
EXAMPLES = 25


def test_every_api_route_is_described(srv: ThreadServer) -> None:
    status, doc = srv.json("GET", "/api/openapi.json")
    assert status == 200, doc
    assert doc["openapi"].startswith("3.1")
    routes = set()
    for rule in srv.app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = FLASK_PARAMETER.sub(r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((method.lower(), path))
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert described == routes
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "4XX" in op["responses"], (method, path)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)


def test_every_reference_resolves(srv: ThreadServer) -> None:
    doc = srv.json("GET", "/api/openapi.json")[1]
    text = json.dumps(doc)
    names = set(re.findall(r'"#/components/schemas/(\w+)"', text))
    assert names, "no references at all"
    assert names <= set(doc["components"]["schemas"]), names - set(doc["components"]["schemas"])


def test_the_document_follows_the_limits_of_this_server() -> None:
    with ThreadServer({"MAX_TIMEOUT": 7.0}) as srv:
        doc = srv.json("GET", "/api/openapi.json")[1]
        exec_job = doc["components"]["schemas"]["ExecJob"]
        assert exec_job["properties"]["timeout"]["maximum"] == 7.0
        status, answer = srv.json(
            "POST", "/api/jobs", {"kind": "exec", "command": "true", "timeout": 7.5}
        )
        assert status == 400 and "the most allowed is 7.0" in answer["error"], answer


def test_every_kind_takes_a_timeout_under_the_servers_wall_clock_limit() -> None:
    """fork and spawn jobs take `timeout` and `kill_signal` as exec jobs do (guard.py ends
    them), and no request may ask for more than --max-job-seconds."""
    with ThreadServer({"MAX_TIMEOUT": 7.0, "MAX_JOB_SECONDS": 5.0}) as srv:
        schemas = srv.json("GET", "/api/openapi.json")[1]["components"]["schemas"]
        for kind in ("ForkJob", "SpawnJob", "ExecJob", "ExecFileJob"):
            properties = schemas[kind]["properties"]
            assert properties["timeout"]["maximum"] == 5.0, kind
            assert properties["kill_signal"] == {"$ref": "#/components/schemas/Signal"}, kind
        body = {"kind": "fork", "program": "hello.py", "timeout": 6}
        status, answer = srv.json("POST", "/api/jobs", body)
        assert status == 400 and "'timeout' is 6; the most allowed is 5.0" in answer["error"]


def test_the_document_needs_the_token(srv: ThreadServer) -> None:
    assert srv.json("GET", "/api/openapi.json", token=False)[0] == 401


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    # Few children, so generated jobs (a `sleep` among them) cannot pile up; short grace.
    with LiveServer(["--max-children", "8", "--grace", "1"]) as server:
        yield server
    assert server.returncode == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def fresh_jobs(server: LiveServer) -> list[str]:
    """Kill every running job, then start two to aim at: a fork job that echoes messages and
    a spawn job that reads stdin; a third id that is no job."""
    for job in server.json("GET", "/api/jobs")[1]["jobs"]:
        if job["state"] in ("starting", "running"):
            server.json("POST", f"/api/jobs/{job['id']}/kill", {"signal": "SIGKILL"})
    wait_for(
        lambda: server.json("GET", "/api/status")[1]["live_children"] == 0,
        what="every job to end",
    )
    ids = []
    for body in (
        {"kind": "fork", "program": "echo.py"},
        {"kind": "spawn", "command": "cat"},
    ):
        status, job = server.json("POST", "/api/jobs", body)
        assert status == 201, job
        ids.append(job["id"])
    return [*ids, "no-such-job"]


def lab_runs(server: LiveServer) -> list[str]:
    """The latest lab run's id (if any) and one that is no run, to aim run requests at."""
    latest = server.json("GET", "/api/lab")[1]["run"]
    return [latest["id"], "no-such-run"] if latest else ["no-such-run"]


def end_lab_run(server: LiveServer, response: requests.Response) -> None:
    """Cancel a lab run the fuzzer started and wait until it has ended.

    A valid ``POST /api/lab/runs`` starts a real benchmark (several seconds of both cores
    at the defaults). Cancelled at once (the child being measured is killed), each generated
    request still goes through the whole start path, and the next one finds no run going.
    """
    if response.status_code != 202:
        return
    run_id = response.json()["run"]["id"]
    server.json("DELETE", f"/api/lab/runs/{run_id}")  # 409 if it has ended already
    wait_for(
        lambda: server.json("GET", f"/api/lab/runs/{run_id}")[1]["run"]["state"] != "running",
        what=f"lab run {run_id} to end",
    )


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzed_requests_get_no_5xx_and_answers_keep_the_schema(
    live: LiveServer, mode: str
) -> None:
    """Every operation, `EXAMPLES` generated requests each (the document's own examples
    first); a failure names the operation and the request that broke it.

    A made-up job id only ever reaches the 404, so valid requests are aimed at real jobs
    (an echoing fork job, a spawn job reading stdin, and one id that is no job, in turn): the
    generated messages, stdin, signals, captures and queries reach the code behind the 404.
    Run requests are aimed at the latest lab run the same way, and every lab run the fuzzer
    starts is cancelled at once (`end_lab_run`).
    """
    doc = live.json("GET", "/api/openapi.json")[1]
    # Any 4xx is a refusal (413 for a body over --max-body among them).
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": ["4XX"]}}}
    )
    schema = schemathesis.openapi.from_dict(doc, config=config)
    generation = schemathesis.GenerationMode(mode)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    if mode == "negative":
        checks.append(negative_data_rejection)
    session = requests.Session()
    session.headers.update(live.headers)
    tried = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            calls = []
            targets = None
            parameter = next((p for p in ("job_id", "run_id") if f"{{{p}}}" in operation.path), "")
            if mode == "positive" and parameter == "job_id":
                targets = itertools.cycle(fresh_jobs(live))
            elif mode == "positive" and parameter == "run_id":
                targets = itertools.cycle(lab_runs(live))
            starts_lab_runs = label == "POST /api/lab/runs"

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=generation))
            def fuzz(case: Any) -> None:
                if targets is not None:  # noqa: B023 (run at once, in this loop)
                    case.path_parameters[parameter] = next(targets)  # noqa: B023
                response = case.call(base_url=live.base_url, session=session, timeout=30)
                calls.append(response.status_code)  # noqa: B023 (run at once, in this loop)
                try:
                    case.validate_response(response, checks=checks)
                finally:
                    if starts_lab_runs:  # noqa: B023
                        end_lab_run(live, response)

            try:
                fuzz()
            except hypothesis.errors.Unsatisfiable:
                continue  # e.g. no way to break a GET without parameters
            except Exception as exc:
                raise AssertionError(f"{label} ({mode}): {exc}") from exc
            tried.append((label, len(calls)))
    finally:
        session.close()
    assert len(tried) >= len(doc["paths"]), tried
    assert all(count > 0 for _label, count in tried), tried
