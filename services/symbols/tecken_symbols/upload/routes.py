# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Installs the upload side's routes (listed in tecken_symbols.routes)."""

from __future__ import annotations

import falcon

from tecken_symbols.context import AppContext
from tecken_symbols.upload.api import add_api_routes
from tecken_symbols.upload.resources import UploadResource
from tecken_symbols.upload.v2 import add_v2_routes


def add_upload_routes(app: falcon.App, ctx: AppContext) -> None:
    app.add_route("/upload/", UploadResource(ctx))
    add_v2_routes(app, ctx)
    add_api_routes(app, ctx)
