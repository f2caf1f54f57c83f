# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every route module of the service, installed in this order by create_app.

Each installer is ``install(app: falcon.App, ctx: AppContext) -> None``. To add
a route module, import its installer and append it to ROUTE_INSTALLERS (the
upload side adds ``add_upload_routes`` from ``tecken_symbols.upload.routes``)."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from tecken_symbols.context import AppContext
from tecken_symbols.debuginfod import add_debuginfod_routes
from tecken_symbols.download import add_download_routes
from tecken_symbols.files import add_files_routes
from tecken_symbols.missing_routes import add_missing_routes
from tecken_symbols.people.routes import add_people_routes
from tecken_symbols.syminfo import add_syminfo_routes
from tecken_symbols.symstore import add_symstore_routes
from tecken_symbols.upload.routes import add_upload_routes
from tecken_symbols.webui import add_webui_routes

RouteInstaller = Callable[[falcon.App, AppContext], None]

ROUTE_INSTALLERS: list[RouteInstaller] = [
    add_download_routes,
    add_symstore_routes,
    add_debuginfod_routes,
    add_files_routes,
    add_syminfo_routes,
    add_missing_routes,
    add_upload_routes,
    add_webui_routes,
    add_people_routes,
]
