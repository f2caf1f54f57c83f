# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The collector WSGI application: ``create_app()`` assembles it from
configuration. Options live in :mod:`tecken_collector.settings`, health checks
in :mod:`tecken_collector.heartbeat`, ``/submit`` in
:mod:`tecken_collector.submit_resource`. Nothing but ``wsgi.py`` and the tests
imports this module."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon
from everett.manager import ConfigManager

from tecken_collector.crashmover import CrashMover, MoverSettings
from tecken_collector.heartbeat import HealthMetricsMiddleware, RoomNeeded, heartbeat_checks
from tecken_collector.payload import PayloadLimits
from tecken_collector.scrubber import count_scrub_error, scrub_collector_event
from tecken_collector.settings import (
    CONFIG_COMPONENTS,
    METRICS_YAML,
    NAMESPACE,
    AppConfig,
    BreakpadConfig,
    StorageConfig,
    build_storage,
    build_throttler,
    options,
)
from tecken_collector.submit_resource import BreakpadSubmitterResource, count_fsync_round
from tecken_shared.config import build_config_manager, log_options
from tecken_shared.dockerflow import add_dockerflow_routes, release_name
from tecken_shared.logging import log_unhandled_exceptions
from tecken_shared.openapi import add_openapi_route
from tecken_shared.service import json_error_serializer, setup_service

logger = logging.getLogger("tecken_collector.app")

#: The service's OpenAPI description, served at /__openapi__.json.
OPENAPI_SPEC = Path(__file__).parent / "openapi.yaml"

INDEX_HTML = (
    "<!doctype html><html><head><title>Tecken collector</title></head><body>"
    "<h1>Tecken collector</h1><p>Crash report collector: POST crash reports to "
    "<code>/submit</code>.</p></body></html>"
)


class IndexResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.text = INDEX_HTML


def create_app(manager: ConfigManager | None = None) -> falcon.App:
    manager = manager or build_config_manager()
    version_file = options(manager, AppConfig)("version_file")
    release = release_name(version_file, "tecken-collector")
    setup_service(
        NAMESPACE,
        manager,
        NAMESPACE,
        METRICS_YAML,
        release,
        scrubber=scrub_collector_event,
        on_scrub_error=count_scrub_error,
    )

    mover_settings = MoverSettings.from_config(manager)
    storage = build_storage(manager, outbox=mover_settings.enabled)
    storage.sync_group.on_round = count_fsync_round
    mover = CrashMover.from_settings(mover_settings, storage.roots)
    submit = BreakpadSubmitterResource(
        throttler=build_throttler(manager),
        storage=storage,
        limits=PayloadLimits.from_config(manager),
        stage_token=options(manager, BreakpadConfig)("stage_submitter_bearer_token"),
        after_save=mover.move_saved if mover.inline else None,
    )
    storage_options = options(manager, StorageConfig)
    room = RoomNeeded(
        storage_options("crashstorage_min_free_space"),
        storage_options("crashstorage_min_free_inodes"),
    )
    log_options(logger, manager, NAMESPACE, CONFIG_COMPONENTS)

    app = falcon.App(middleware=[HealthMetricsMiddleware()])
    # 4xx/5xx raised as Falcon errors answer the shared JSON shape; /submit
    # keeps Antenna's text answers (Discarded=...), which crash reporters read.
    app.set_error_serializer(json_error_serializer)
    log_unhandled_exceptions(app, logger)
    add_openapi_route(app, OPENAPI_SPEC)
    app.add_route("/", IndexResource())
    app.add_route("/submit", submit)
    add_dockerflow_routes(
        app,
        checks=heartbeat_checks(storage, mover, room),
        version_file=version_file,
        failure_status=falcon.HTTP_503,
    )
    return app
