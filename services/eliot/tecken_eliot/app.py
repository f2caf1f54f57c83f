# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The eliot WSGI application: ``create_app()`` assembles it from
configuration. Only ``wsgi.py`` and tests import this module; the cache
manager process uses ``settings`` and the domain modules."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon
from everett.manager import ConfigManager

from tecken_eliot.downloader import public_url
from tecken_eliot.explain import module_explainer
from tecken_eliot.heartbeat import health_checks
from tecken_eliot.index_resource import IndexResource
from tecken_eliot.middleware import middleware
from tecken_eliot.minidump_resource import MinidumpResource
from tecken_eliot.settings import (
    NAMESPACE,
    WEBAPP_OPTIONS,
    WebAppConfig,
    read_options,
    setup_eliot_process,
)
from tecken_eliot.stackwalk import Stackwalker
from tecken_eliot.store import SymcacheStore
from tecken_eliot.symbolicate import Symbolicator
from tecken_eliot.symbolicate_resource import SymbolicateV4Resource, SymbolicateV5Resource
from tecken_eliot.validation import Limits
from tecken_shared.config import build_config_manager, log_options
from tecken_shared.dockerflow import add_dockerflow_routes
from tecken_shared.logging import log_unhandled_exceptions
from tecken_shared.openapi import add_openapi_route
from tecken_shared.service import json_error_serializer

#: The OpenAPI 3.1 description of every route, served at /__openapi__.json.
OPENAPI_SPEC = Path(__file__).parent / "openapi.yaml"

logger = logging.getLogger("tecken_eliot")


class EliotApp(falcon.App):
    """The Falcon app, holding its symcache store (tests and the bench use it)."""

    store: SymcacheStore
    stackwalker: Stackwalker


def create_app(manager: ConfigManager | None = None) -> EliotApp:
    manager = manager or build_config_manager()
    version_file = setup_eliot_process(manager, "webapp")["version_file"]
    options = read_options(manager, WebAppConfig)

    store = SymcacheStore.from_config(manager)
    symbolicator = Symbolicator(
        store, options["max_response_size"], explainer=module_explainer(store)
    )
    log_options(logger, manager, NAMESPACE, WEBAPP_OPTIONS)
    logger.info(
        "symbol servers: %s; cache: %s (max %s bytes)",
        ", ".join(public_url(url) for url in store.downloader.source_urls),
        store.disk.root,
        f"{store.disk.max_size:,}",
    )

    stackwalker = Stackwalker.from_config(manager, store.downloader)
    if stackwalker.problem:
        logger.error("POST /minidump is unavailable: %s", stackwalker.problem)

    app = EliotApp(middleware=middleware())
    app.set_error_serializer(json_error_serializer)
    log_unhandled_exceptions(app, logger)
    app.add_route("/", IndexResource())
    max_body = options["max_request_size"]
    limits = Limits(options["max_modules"], options["max_frames"])
    app.add_route("/symbolicate/v5", SymbolicateV5Resource(symbolicator, max_body, limits))
    app.add_route("/symbolicate/v4", SymbolicateV4Resource(symbolicator, max_body, limits))
    add_openapi_route(app, OPENAPI_SPEC)
    app.add_route("/minidump", MinidumpResource(stackwalker))
    add_dockerflow_routes(
        app,
        checks=health_checks(store.disk, options["cache_manager_max_age"], stackwalker),
        version_file=version_file,
    )
    app.store = store
    app.stackwalker = stackwalker
    return app
