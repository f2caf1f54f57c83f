# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The service's error answers, all Tecken's ``{"error": message}`` JSON:
:class:`JSONError` (raised by resources), and the app-wide handlers that
:mod:`tecken_symbols.app` installs for unknown routes (404), wrong methods
(405) and database failures (503). The upload side answers its refusals with
:func:`tecken_symbols.upload.errors.answer_error`."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from tecken_symbols.db import DatabaseError

logger = logging.getLogger(__name__)

#: Headers of every answer to a symbol-download URL.
#: What Tecken's nginx adds to its answers (its stage systemtest checks them).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Allow-Headers": (
        "accept,accept-encoding,authorization,content-type,dnt,origin,user-agent,"
        "x-csrftoken,x-requested-with"
    ),
}


class JSONError(falcon.HTTPError):
    """An HTTP error whose body is Tecken's ``{"error": message}``."""

    def __init__(self, status: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, title=message, headers=headers)
        self.message = message

    def to_dict(self, obj_type: type = dict) -> dict[str, Any]:
        result = obj_type()
        result["error"] = self.message
        return result


def route_not_found(req: falcon.Request, resp: falcon.Response) -> None:
    resp.status = falcon.HTTP_404
    resp.media = {"error": "Not Found", "path": req.path}


def not_found_handler(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict
) -> None:
    route_not_found(req, resp)


def method_not_allowed(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPMethodNotAllowed, params: dict
) -> None:
    """Tecken's 405 body: ``{"error": "Method Not Allowed (POST): /path"}``."""
    resp.status = falcon.HTTP_405
    allowed = [
        m.strip()
        for m in (ex.headers or {}).get("Allow", "").split(",")
        if m.strip() and m.strip() != "OPTIONS"
    ]
    if allowed:
        resp.set_header("Allow", ", ".join(allowed))
    parts = req.path.strip("/").split("/")
    if len(parts) == 3 or (len(parts) == 4 and parts[0] == "try"):
        resp.set_headers(CORS_HEADERS)  # a symbol-download URL
    resp.media = {"error": f"Method Not Allowed ({req.method}): {req.path}"}


def database_error_handler(
    req: falcon.Request, resp: falcon.Response, ex: DatabaseError, params: dict
) -> None:
    """A database failure on any endpoint: 503 with ``Retry-After``, not a 500."""
    logger.error("database error on %s %s: %s", req.method, req.path, ex)
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", "5")
    resp.media = {"error": "The database could not be reached; try again shortly."}


def install_error_handlers(app: falcon.App) -> None:
    app.add_error_handler(falcon.HTTPRouteNotFound, not_found_handler)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, method_not_allowed)
    app.add_error_handler(DatabaseError, database_error_handler)
