# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The symbols WSGI application: ``create_app()`` builds it from configuration.

It builds the :class:`~tecken_symbols.context.AppContext` (database, storages,
lookup cache, missing-symbol recorder; migrations applied when
``SYMBOLS_DATABASE_AUTOMIGRATE`` is true) and hands it to every installer
listed in :mod:`tecken_symbols.routes`."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon
import markus
from everett.manager import ConfigManager

from tecken_shared.config import build_config_manager, log_options
from tecken_shared.dockerflow import add_dockerflow_routes, release_name
from tecken_shared.logging import log_unhandled_exceptions
from tecken_shared.openapi import add_openapi_route
from tecken_shared.service import json_error_serializer, setup_service
from tecken_symbols.context import AppContext, build_context
from tecken_symbols.errors import install_error_handlers
from tecken_symbols.heartbeat import heartbeat_checks
from tecken_symbols.routes import ROUTE_INSTALLERS
from tecken_symbols.settings import CONFIG_COMPONENTS, METRICS_YAML, NAMESPACE, AppConfig

OPENAPI_SPEC = Path(__file__).parent / "openapi.yaml"

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")


def count_sentry_scrub_error() -> None:
    """A Sentry event dropped because scrubbing it failed (it may hold a token)."""
    metrics.incr("sentry_scrub_error")


def create_app(manager: ConfigManager | None = None) -> falcon.App:
    app, _ctx = create_app_and_context(manager)
    return app


def create_app_and_context(manager: ConfigManager | None = None) -> tuple[falcon.App, AppContext]:
    """The app and its context (tests and tools use the context directly)."""
    manager = manager or build_config_manager()
    config = manager.with_namespace(NAMESPACE).with_options(AppConfig)
    release = release_name(config("version_file"), "tecken-symbols")
    setup_service(
        "symbols",
        manager,
        NAMESPACE,
        METRICS_YAML,
        release,
        on_scrub_error=count_sentry_scrub_error,
    )
    log_options(logger, manager, NAMESPACE, CONFIG_COMPONENTS)
    ctx = build_context(manager)

    app = falcon.App()
    app.set_error_serializer(json_error_serializer)
    log_unhandled_exceptions(app, logger)  # RT-25: a JSON log line and a JSON 500
    install_error_handlers(app)
    add_dockerflow_routes(
        app,
        checks=heartbeat_checks(ctx),
        version_file=config("version_file"),
    )
    for install in ROUTE_INSTALLERS:
        install(app, ctx)
    add_openapi_route(app, OPENAPI_SPEC)
    return app, ctx
