"""Token, Origin check and the command policy.

A page that runs commands is remote code execution if anyone else can reach it, so the app is
locked by default: every request must name this server in its Host header (DNS rebinding) and
carry the per-start token (as Jupyter does), the WebSocket
refuses foreign origins (cross-site WebSocket hijacking), and spawn / exec run only an
allowlist of harmless commands, each with only the arguments it declares (arguments.py),
unless the operator says ``--allow-any-command``.
"""

from __future__ import annotations

import hmac
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, current_app, jsonify, redirect, request

from .arguments import ArgumentError, Arguments
from .upgrade import asks_for_websocket

#: Characters that make a shell do more than run one command with arguments. Quotes and
#: backslashes are fine: the line is split as sh would (shlex) and run without a shell.
SHELL_METACHARACTERS = frozenset(";&|`$<>(){}[]*?~!#\n\r")

#: Environment variables that change what a program runs (a loader, a startup file, the
#: search path): refused in a job's `env` unless any command is allowed.
DANGEROUS_ENV = frozenset(
    {
        "PATH",
        "BASH_ENV",
        "ENV",
        "IFS",
        "SHELLOPTS",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PERL5OPT",
        "PERL5LIB",
    }
)
DANGEROUS_ENV_PREFIXES = ("LD_", "DYLD_", "NODE_CHANNEL", "IPC_")

NODE_NAMES = frozenset({"node", "nodejs"})
PYTHON_NAMES = frozenset({"python", "python3", sys.executable, os.path.basename(sys.executable)})

UNAUTHORIZED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IPC Explorer: token needed</title></head>
<body><h1>Open the URL printed at start</h1>
<p>IPC Explorer runs commands on this machine, so it needs the access token. Open the URL
that <code>ipc-explorer</code> printed when it started (it ends with
<code>?token=...</code>).</p></body></html>
"""


class PolicyError(Exception):
    """A command the policy refuses; the message says why and how to allow it."""


# ---- token ----------------------------------------------------------------------------------


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from timings."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def request_token() -> tuple[str | None, str]:
    """The token the request carries and where: header, query or cookie."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), "header"
    if "token" in request.args:
        return request.args.get("token"), "query"
    cookie = request.cookies.get(current_app.config["TOKEN_COOKIE"])
    if cookie:
        return cookie, "cookie"
    return None, "none"


def wants_html() -> bool:
    """A browser navigation (Accept names text/html explicitly), not an API client or curl."""
    return any(mime == "text/html" for mime, _q in request.accept_mimetypes)


def is_websocket() -> bool:
    """The request asks for a WebSocket, exactly as the handshake (upgrade.py) decides it."""
    return asks_for_websocket(request.headers)


def check_request() -> Response | None:
    """`before_request` for the whole app: the Host, the token, then a WebSocket's Origin.

    A valid ``?token=`` on a browser GET sets the cookie and redirects to the clean URL, so the
    token leaves the address bar and the history.
    """
    problem = host_problem(
        request.environ.get("HTTP_HOST"),
        request.environ.get("SERVER_NAME", ""),
        str(request.environ.get("SERVER_PORT", "")),
        current_app.config["ALLOWED_HOSTS"],
    )
    if problem:
        response = jsonify(error=problem)
        response.status_code = 403
        return response
    token = current_app.config["TOKEN"]
    given, where = request_token()
    if not token_matches(given, token):
        return unauthorized(
            "missing access token"
            if where == "none"
            else f"wrong access token (from the {where}); "
            "use the URL printed at start, or 'Authorization: Bearer <token>'"
        )
    if is_websocket():
        problem = origin_problem(
            request.headers.get("Origin"),
            request.host,
            request.scheme,
            current_app.config["ALLOWED_ORIGINS"],
        )
        if problem:
            response = jsonify(error=problem)
            response.status_code = 403
            return response
        return None
    if where == "query":
        if request.method == "GET" and wants_html():
            args = {k: v for k, v in request.args.items(multi=True) if k != "token"}
            clean = request.path + ("?" + urlencode(args) if args else "")
            response = redirect(clean, code=303)
            set_token_cookie(response, token)
            return response
        request.environ["ipc_explorer.set_cookie"] = True
    return None


def set_token_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        current_app.config["TOKEN_COOKIE"],
        token,
        httponly=True,
        samesite="Strict",
        path="/",
    )


def after_request(response: Response) -> Response:
    """Set the cookie for a ?token= request that was not redirected (e.g. a POST)."""
    if request.environ.get("ipc_explorer.set_cookie"):
        set_token_cookie(response, current_app.config["TOKEN"])
    return response


def unauthorized(message: str) -> Response:
    if wants_html() and not request.path.startswith("/api/"):
        return Response(UNAUTHORIZED_PAGE, status=401, mimetype="text/html")
    response = jsonify(error=f"{message}; open the URL printed at start (it carries ?token=)")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="ipc-explorer"'
    return response


def init_app(app: Flask) -> None:
    app.before_request(check_request)
    app.after_request(after_request)


# ---- host ---------------------------------------------------------------------------------


#: Names that always reach this machine; with this server's port they are accepted.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def split_host(host: str) -> tuple[str, str | None]:
    """``"[::1]:8000"`` → ``("[::1]", "8000")``; ``"localhost"`` → ``("localhost", None)``."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", (rest[1:] if rest.startswith(":") else None)
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, None)


def accepted_hosts(config: Mapping[str, Any], environ: Mapping[str, Any]) -> list[str]:
    """The ``Host`` values `host_problem` accepts here, for people to read (/api/status)."""
    port = str(environ.get("SERVER_PORT", ""))
    bound = str(environ.get("SERVER_NAME", "")).lower()
    bound = f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound
    names = dict.fromkeys((*LOOPBACK_HOSTS, bound))  # in order, once each
    return [f"{name}:{port}" for name in names if name] + [
        f"{name} (any port)" for name in config["ALLOWED_HOSTS"]
    ]


def host_problem(
    host: str | None, server_name: str, server_port: str, allowed: Iterable[str] = ()
) -> str | None:
    """Why a request with this ``Host`` header must be refused, or None.

    DNS rebinding: a page on attacker.example whose name is made to resolve to 127.0.0.1
    talks to us from the browser as "its own" site, with ``Host: attacker.example``. So only
    the names this server is reached by are accepted (as Jupyter's ``local_hostnames``): the
    bound address, localhost, 127.0.0.1 and [::1] with our port (none at port 80), and the
    names given with ``--allow-host`` (with any port: a proxy in front may use its own).
    """
    name, port = split_host((host or "").strip().lower())
    if name in {a.lower() for a in allowed}:
        return None
    bound = server_name.lower()
    bound = f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound
    if name in (*LOOPBACK_HOSTS, bound) and (
        port == server_port or (port is None and server_port == "80")
    ):
        return None
    shown = name or "''"
    return (
        f"Host {host!r} is not a name this server answers to (a guard against DNS "
        f"rebinding); open http://127.0.0.1:{server_port}/ or start the server with "
        f"--allow-host {shown} to accept that name"
    )


# ---- origin ---------------------------------------------------------------------------------


def origin_problem(
    origin: str | None, host: str, scheme: str, allowed: Iterable[str] = ()
) -> str | None:
    """Why a WebSocket from `origin` must be refused, or None when it may connect.

    No Origin header at all is a non-browser client (which cannot be hijacked cross-site: it
    still needs the token). A browser always sends one; it must be the page's own.
    """
    if origin is None:
        return None
    if origin == "null":
        return "WebSocket refused: Origin 'null' (a sandboxed or file:// page) is not allowed"
    parts = urlsplit(origin)
    ws_scheme = {"http": "http", "https": "https", "ws": "http", "wss": "https"}.get(scheme, scheme)
    if parts.scheme == ws_scheme and parts.netloc.lower() == host.lower():
        return None
    if origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
        return None
    return (
        f"WebSocket refused: Origin {origin!r} is not this server ({ws_scheme}://{host}); "
        "open the explorer from the URL printed at start"
    )


# ---- command policy -------------------------------------------------------------------------


class CommandPolicy:
    """What spawn / exec / exec_file may run.

    :param allowed: bare command names allowed.
    :param allow_any: run anything (``--allow-any-command``).
    :param arguments: the arguments each allowed command takes (config.py's
        ``COMMAND_ARGUMENTS``); an allowed command missing here takes none.
    :param resolve_program: maps a script argument to a shipped program's path for a given
        runtime (``"python"`` / ``"node"``), or None when it is not a shipped program.
    """

    def __init__(
        self,
        allowed: Iterable[str],
        allow_any: bool,
        resolve_program: Callable[[str, str], str | None],
        arguments: Mapping[str, Arguments] | None = None,
    ) -> None:
        self.allowed = frozenset(allowed)
        self.arguments = dict(arguments or {})
        self.allow_any = allow_any
        self.resolve_program = resolve_program

    def check_argv(self, command: str, args: Sequence[str]) -> list[str]:
        """The argv to run for `command` `args`, or PolicyError with the reason.

        For node / python the script argument may be a shipped program's name; it is replaced
        by its path.
        """
        if self.allow_any:
            return [command, *args]
        runtime = "node" if command in NODE_NAMES else "python" if command in PYTHON_NAMES else None
        if runtime is not None:
            if args in (["--version"], ["-v"], ["-V"]):
                return [sys.executable if runtime == "python" else command, *args]
            if not args:
                raise PolicyError(
                    f"{command!r} may only run one of the shipped programs "
                    f"(GET /api/programs), given as its first argument"
                )
            path = self.resolve_program(args[0], runtime)
            if path is None:
                raise PolicyError(
                    f"{command!r} may only run one of the shipped {runtime} programs "
                    f"(GET /api/programs), not {args[0]!r}; options before the script are "
                    "not allowed (start the server with --allow-any-command to run anything)"
                )
            interpreter = sys.executable if runtime == "python" else command
            return [interpreter, path, *args[1:]]
        if "/" in command:
            raise PolicyError(
                f"command {command!r} is a path; give a bare command name from the allowlist: "
                f"{', '.join(sorted(self.allowed))}"
            )
        if command not in self.allowed:
            raise PolicyError(
                f"command {command!r} is not in the allowlist "
                f"({', '.join(sorted(self.allowed))}, and node/python with a shipped program); "
                "start the server with --allow-any-command to run anything"
            )
        try:
            self.arguments.get(command, Arguments()).check(command, args)
        except ArgumentError as exc:
            raise PolicyError(str(exc)) from None
        return [command, *args]

    def check_shell(self, command: str) -> list[str] | None:
        """For exec (a shell line): the argv it amounts to when it is a plain command, else
        PolicyError. None means "run it through the shell as is" (allow_any)."""
        if self.allow_any:
            return None
        bad = sorted({c for c in command if c in SHELL_METACHARACTERS})
        if bad:
            shown = " ".join(repr(c) for c in bad)
            raise PolicyError(
                f"shell metacharacters {shown} are not allowed in exec's command; "
                "give one plain command with arguments, or start the server with "
                "--allow-any-command"
            )
        words = shlex.split(command)
        if not words:
            raise PolicyError("command is empty; give a command such as 'echo hello'")
        return self.check_argv(words[0], words[1:])

    def summaries(self) -> dict[str, str]:
        """What each allowed command takes, by name (for /api/status)."""
        return {
            name: self.arguments.get(name, Arguments()).summary() for name in sorted(self.allowed)
        }

    def check_env(self, env: Mapping[str, Any] | None) -> None:
        """Refuse variables that would change which code runs (a loader, the search path)."""
        if env is None or self.allow_any:
            return
        for key in env:
            if key in DANGEROUS_ENV or key.startswith(DANGEROUS_ENV_PREFIXES):
                raise PolicyError(
                    f"env variable {key!r} is not allowed: it changes which code runs "
                    "(start the server with --allow-any-command to set it)"
                )
