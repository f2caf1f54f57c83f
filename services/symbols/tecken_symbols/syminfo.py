# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``GET /api/syminfo/{some_file}/{some_id}``: debug and code info of an
uploaded symbol file, found by debug-file/debug-id or code-file/code-id."""

from __future__ import annotations

from urllib.parse import quote

import falcon
import markus

from tecken_shared.breakpad import HEX_RE, sym_filename
from tecken_symbols.context import AppContext
from tecken_symbols.download import _has_param, redirectable, valid_name
from tecken_symbols.errors import CORS_HEADERS, route_not_found

metrics = markus.get_metrics("tecken")


class SymInfoResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, some_file: str, some_id: str
    ) -> None:
        with metrics.timer("api", tags=["endpoint:syminfo"]):
            resp.set_headers(CORS_HEADERS)
            if not valid_name(some_file) or not HEX_RE.fullmatch(some_id):
                route_not_found(req, resp)
                return
            some_id = some_id.upper()
            # Any upload, regular or try, matches; regular ones are preferred.
            info = self.ctx.lookups.syminfo(some_file, some_id, True, _has_param(req, "_refresh"))
            if info is None or not redirectable(info.debug_filename, info.debug_id):
                resp.status = falcon.HTTP_404
                resp.content_type = falcon.MEDIA_TEXT
                resp.text = "Code file / id Not Found"
                return
            path = "/{}{}/{}/{}".format(
                "try/" if info.try_symbols else "",
                quote(info.debug_filename, safe=""),
                quote(info.debug_id, safe=""),
                quote(sym_filename(info.debug_filename), safe=""),
            )
            resp.media = {
                "debug_filename": info.debug_filename,
                "debug_id": info.debug_id,
                "code_file": info.code_file,
                "code_id": info.code_id,
                "generator": info.generator,
                "url": self.ctx.public_url + path,
            }


def add_syminfo_routes(app: falcon.App, ctx: AppContext) -> None:
    app.add_route("/api/syminfo/{some_file}/{some_id}", SymInfoResource(ctx))
