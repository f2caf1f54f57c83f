# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The eliot WSGI application: ``create_app()`` builds it from configuration."""

from __future__ import annotations

from pathlib import Path

import falcon
from everett.manager import ConfigManager, Option

from tecken_shared.config import build_config_manager
from tecken_shared.dockerflow import add_dockerflow_routes, read_version_info
from tecken_shared.service import setup_service

NAMESPACE = "eliot"
HERE = Path(__file__).parent
METRICS_YAML = HERE / "metrics.yaml"


class AppConfig:
    class Config:
        version_file = Option(
            default="version.json",
            doc="Path of the version.json served by /__version__ (source, version, commit, build).",
        )


class IndexResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.text = (
            "<!doctype html><html><head><title>Tecken eliot</title></head><body>"
            "<h1>Tecken eliot</h1><p>Symbolication API.</p></body></html>"
        )


def create_app(manager: ConfigManager | None = None) -> falcon.App:
    manager = manager or build_config_manager()
    config = manager.with_namespace(NAMESPACE).with_options(AppConfig)
    version = read_version_info(config("version_file"), "tecken-eliot")
    setup_service("eliot", manager, NAMESPACE, METRICS_YAML, str(version.get("version")))
    app = falcon.App()
    app.add_route("/", IndexResource())
    add_dockerflow_routes(
        app, checks={}, package="tecken-eliot", version_file=config("version_file")
    )
    return app
