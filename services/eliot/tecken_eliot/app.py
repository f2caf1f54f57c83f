# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The eliot WSGI application: ``create_app()`` assembles it from
configuration. Only ``wsgi.py`` and tests import this module; the cache
manager process uses ``settings`` and the domain modules."""

from __future__ import annotations

import logging

import falcon
from everett.manager import ConfigManager

from tecken_eliot.heartbeat import health_checks
from tecken_eliot.index_resource import IndexResource
from tecken_eliot.middleware import middleware
from tecken_eliot.settings import (
    NAMESPACE,
    WEBAPP_OPTIONS,
    WebAppConfig,
    read_options,
    setup_eliot_process,
)
from tecken_eliot.store import SymcacheStore
from tecken_eliot.symbolicate import Symbolicator
from tecken_eliot.symbolicate_resource import SymbolicateV4Resource, SymbolicateV5Resource
from tecken_shared.config import build_config_manager, log_options
from tecken_shared.dockerflow import add_dockerflow_routes

logger = logging.getLogger("tecken_eliot")


class EliotApp(falcon.App):
    """The Falcon app, holding its symcache store (tests and the bench use it)."""

    store: SymcacheStore


def create_app(manager: ConfigManager | None = None) -> EliotApp:
    manager = manager or build_config_manager()
    version_file = setup_eliot_process(manager, "webapp")["version_file"]
    options = read_options(manager, WebAppConfig)

    store = SymcacheStore.from_config(manager)
    symbolicator = Symbolicator(store)
    log_options(logger, manager, NAMESPACE, WEBAPP_OPTIONS)
    logger.info(
        "symbol servers: %s; cache: %s (max %s bytes)",
        ", ".join(store.downloader.source_urls),
        store.disk.root,
        f"{store.disk.max_size:,}",
    )

    app = EliotApp(middleware=middleware())
    app.add_route("/", IndexResource())
    max_body = options["max_request_size"]
    app.add_route("/symbolicate/v5", SymbolicateV5Resource(symbolicator, max_body))
    app.add_route("/symbolicate/v4", SymbolicateV4Resource(symbolicator, max_body))
    add_dockerflow_routes(
        app,
        checks=health_checks(store.disk, options["cache_manager_max_age"]),
        version_file=version_file,
    )
    app.store = store
    return app
