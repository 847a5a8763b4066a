"""The OpenAPI 3.1 description of ``/api``, built from the routes themselves.

Each ``/api`` view is wrapped by `operation(...)`, which says what it takes and answers in
terms of schemas.py's names. The wrapper does the reading too: it parses the body (jsoncheck's
`parse`: no NaN, no lone surrogates, bounded nesting) and validates it against the named
schema before the view runs, so the view gets a checked ``body`` and the document says exactly
what the check does. `document(app)` walks Flask's URL map: a route under ``/api`` without an
`operation` is an error, so the description cannot silently miss one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, request

from .errors import ApiError
from .jsoncheck import Checker, ShapeError, parse

ATTRIBUTE = "openapi_operation"
SCHEMAS = "ipc_explorer.schemas"
_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers.

    :param responses: success status → schema name (None: no body).
    :param body: the request body's schema name, if it takes one.
    :param body_required: False: an empty body counts as ``{}``.
    :param query: names of schemas.QUERY parameters it reads.
    :param ndjson: it can also answer ``application/x-ndjson``.
    """

    summary: str
    responses: Mapping[int, str | None]
    body: str | None = None
    body_required: bool = True
    query: tuple[str, ...] = ()
    ndjson: bool = False
    tags: tuple[str, ...] = field(default=("jobs",))


def operation(
    summary: str,
    responses: Mapping[int, str | None],
    *,
    body: str | None = None,
    body_required: bool = True,
    query: tuple[str, ...] = (),
    ndjson: bool = False,
    tag: str = "jobs",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a view; with `body`, hand it the checked request body as ``body=``."""
    op = Operation(summary, responses, body, body_required, query, ndjson, (tag,))

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if op.body is not None:
                kwargs["body"] = read_body(op.body, op.body_required)
            return view(*args, **kwargs)

        setattr(wrapper, ATTRIBUTE, op)
        return wrapper

    return decorate


def checker() -> Checker:
    return current_app.extensions[SCHEMAS]


def read_body(schema: str, required: bool = True) -> Any:
    """The request's JSON body, checked against the named schema.

    :raises ApiError: 400 saying what is wrong and how to fix it.
    """
    raw = request.get_data(cache=True)
    if not raw and not required:
        return {}
    if not request.is_json:
        raise ApiError(
            400,
            "send a JSON object with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'})",
        )
    try:
        value = parse(raw)
        shapes = checker()
        return shapes.check(shapes.components[schema], value)
    except ShapeError as exc:
        raise ApiError(400, str(exc)) from None


def init_app(app: Flask, components: Mapping[str, Any]) -> None:
    app.extensions[SCHEMAS] = Checker(components)


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every ``/api`` route of `app`.

    :raises LookupError: a route under /api without an `operation`.
    """
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/"):
            continue
        op: Operation | None = getattr(app.view_functions[rule.endpoint], ATTRIBUTE, None)
        if op is None:
            raise LookupError(f"{rule.rule} ({rule.endpoint}) has no @operation description")
        path = _PARAMETER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _describe(op, rule.arguments, rule)
    components = dict(app.extensions[SCHEMAS].components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IPC Explorer",
            "version": "1",
            "description": "Jobs (fork / spawn / exec / exec_file children) over REST. Every "
            'refusal is a 4xx with {"error": "..."} that says how to fix the request.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": app.config["TOKEN_COOKIE"],
                },
            },
        },
        "security": [{"bearer": []}, {"query": []}, {"cookie": []}],
    }


def _describe(op: Operation, arguments: set[str], rule: Any) -> dict[str, Any]:
    from .schemas import QUERY, REQUEST_EXAMPLES

    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        }
        for name in sorted(arguments)
    ]
    parameters += [QUERY[name] for name in op.query]
    responses: dict[str, Any] = {}
    for status, schema in op.responses.items():
        answer: dict[str, Any] = {"description": op.summary if status < 300 else "refused"}
        if schema is not None:
            content = {"application/json": {"schema": {"$ref": _ref(schema)}}}
            if op.ndjson:
                content["application/x-ndjson"] = {"schema": {"type": "string"}}
            answer["content"] = content
        responses[str(status)] = answer
    responses["4XX"] = {
        "description": "refused: the error says how to fix the request",
        "content": {"application/json": {"schema": {"$ref": _ref("Error")}}},
    }
    described: dict[str, Any] = {
        "operationId": rule.endpoint.replace(".", "_"),
        "summary": op.summary,
        "tags": list(op.tags),
        "responses": responses,
    }
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": {"$ref": _ref(op.body)}}
        examples = REQUEST_EXAMPLES.get(op.body)
        if examples:
            media["examples"] = {name: {"value": value} for name, value in examples.items()}
        described["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": media},
        }
    return described


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"
