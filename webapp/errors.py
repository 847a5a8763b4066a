"""One error type for every refused request, and the handlers that turn errors into JSON.

Every refusal answers ``{"error": "..."}`` with a message that says how to fix the request
(Flask's own style: "'name' may not contain a dot '.' character."), never an HTML error page
for an API client and never a stack trace.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """A request the app refuses: HTTP `status` and a message for the person who sent it."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        response = jsonify(error=self.message, **self.extra)
        response.status_code = self.status
        return response


class StoreUnavailable(ApiError):
    """The shared store (Redis, with --redis) cannot be reached: the request was not done."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


_HINTS = {
    404: "no such URL; the API is under /api (GET /api/jobs, POST /api/jobs, ...)",
    405: "this URL does not take that method",
    413: "the request body is too large",
}


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        return error.response()

    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException) -> Response | HTTPException:
        if request.path.startswith("/api/") or error.code in (413,) or not _is_page():
            status = error.code or 500
            message = _HINTS.get(status, error.description or error.name)
            if status == 413:
                limit = app.config.get("MAX_CONTENT_LENGTH")
                message = f"the request body is over the {limit}-byte limit; send less"
            elif status == 405:
                allowed = ", ".join(getattr(error, "valid_methods", None) or [])
                message = f"{request.method} is not allowed on {request.path}" + (
                    f"; use {allowed}" if allowed else ""
                )
            response = jsonify(error=message)
            response.status_code = status
            return response
        return error

    _unexpected(app)


def _unexpected(app: Flask) -> None:
    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response | Exception:
        """A bug of ours: logged with its traceback, answered in JSON, the server carries on."""
        if isinstance(error, HTTPException):
            return error
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        response = jsonify(error=f"internal error ({type(error).__name__}); it was logged")
        response.status_code = 500
        return response


def _is_page() -> bool:
    return any(mime == "text/html" for mime, _q in request.accept_mimetypes)
