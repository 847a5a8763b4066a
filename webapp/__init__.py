"""IPC Explorer's Flask app: jobs over REST, one live WebSocket feed, the seeds' endpoints.

`create_app(config)` is the application factory (as Flask's tutorial ``flaskr``): defaults from
``config.py`` overlaid with `config`, the token check for every request, the blueprints (api,
feed, demos, pages), and the services (event bus, job service) in ``app.extensions``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides settings by name (see ``webapp.config.DEFAULTS``)."""
    from . import api, demos, errors, feed, openapi, pages, security, tools_api
    from .config import build_config
    from .jsontext import ExplorerJSONProvider
    from .schemas import components
    from .services import Services

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(build_config(config))
    if not (config or {}).get("TOKEN"):
        # Made up here (e.g. `flask --app webapp run`): say it, or nobody can get in.
        print(
            f"IPC Explorer access token: {app.config['TOKEN']} (open /?token=<token>)",
            file=sys.stderr,
            flush=True,
        )
    app.json = ExplorerJSONProvider(app)

    security.init_app(app)
    errors.init_app(app)
    openapi.init_app(app, components(app.config))
    app.register_blueprint(api.bp)
    app.register_blueprint(tools_api.bp)
    app.register_blueprint(demos.bp)
    app.register_blueprint(pages.bp)
    feed.init_app(app)

    services = Services.build(app.config)
    services.init_app(app)
    services.heartbeat.start()
    services.start()
    return app


def shutdown_app(app: Flask, grace: float | None = None) -> list[Any]:
    """Stop every child of `app` (TERM, KILL after `grace`) and end its feed connections.

    :returns: the jobs (`webapp.jobs.Job`) whose children were still running.
    """
    from .services import EXTENSION

    return app.extensions[EXTENSION].shutdown(grace)


__all__ = ["create_app", "shutdown_app"]
