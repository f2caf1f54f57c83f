# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Symbol downloads: ``GET``/``HEAD /{debug_file}/{debug_id}/{symbols_file}``,
the ``/try/`` prefix and ``?try``.

Found: GET answers 302 to the object's download URL, HEAD answers 200 (a
deliberate, Tecken-compatible convention). Not found: a ``.sym`` request with
an id shorter than 33 characters falls back to a code-file/code-id lookup
(302 to the relative debug-file URL); otherwise 404 ``Symbol Not Found`` and
the miss is recorded (GET only)."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote

import falcon
import markus

from tecken_shared.breakpad import HEX_RE
from tecken_shared.storage import InvalidKey, StorageError
from tecken_symbols.context import AppContext
from tecken_symbols.errors import CORS_HEADERS, JSONError, route_not_found

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

# One or more characters, none a control character, a byte 0x80-0xff, a slash
# or one of \ ^ ` > < { } [ ] # % " ' |
_NAME = r"[^\x00-\x1f\x80-\xff\\^`><{}\[\]#%\"'|/]+"
NAME_RE = re.compile(_NAME)

IGNORED_ID = "0" * 33
#: The longest key any backend can hold (S3's limit, in bytes; keys are ASCII).
MAX_KEY_LENGTH = 1024
NOT_FOUND = "Symbol Not Found"
IGNORED = "Symbol Not Found (and ignored)"
TRUE_VALUES = {"true", "1", "yes"}


def valid_name(value: str) -> bool:
    if not NAME_RE.fullmatch(value):
        return False
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        # Non-ASCII characters arrive as bytes 0x80-0xff (UTF-8): not allowed.
        return False
    return True


def redirectable(debug_filename: str | None, debug_id: str | None) -> bool:
    """Whether a recorded module may be put in a ``Location`` (RT-16): the
    header of a file uploaded without content checks could name anything."""
    return bool(
        debug_filename
        and debug_id
        and valid_name(debug_filename)
        and debug_filename not in (".", "..")
        and HEX_RE.fullmatch(debug_id)
    )


def wants_debug(req: falcon.Request) -> bool:
    return (req.get_header("Debug") or "").strip().lower() in TRUE_VALUES


class DownloadResource:
    """Both URL shapes; ``force_try`` for the ``/try/`` routes."""

    def __init__(self, ctx: AppContext, force_try: bool = False) -> None:
        self.ctx = ctx
        self.force_try = force_try

    def _answer(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        debug_file: str,
        debug_id: str,
        symbols_file: str,
    ) -> None:
        resp.set_headers(CORS_HEADERS)
        resp.set_headers(self.ctx.download_headers)
        if not (valid_name(debug_file) and valid_name(symbols_file) and HEX_RE.fullmatch(debug_id)):
            route_not_found(req, resp)
            return
        debug = wants_debug(req)
        debug_id = debug_id.upper()
        if (
            symbols_file == "file.ptr"
            or debug_id == IGNORED_ID
            or not symbols_file.endswith(self.ctx.allowed_extensions)
        ):
            resp.status = falcon.HTTP_404
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = IGNORED
            if debug:
                resp.set_header("Debug-Time", "0")
            return

        try_symbols = self.force_try or _has_param(req, "try")
        key = f"{debug_file}/{debug_id}/{symbols_file}"
        refresh = _has_param(req, "_refresh")
        started = time.perf_counter()
        try:
            if len(key) > MAX_KEY_LENGTH:
                raise InvalidKey(f"storage key longer than {MAX_KEY_LENGTH} bytes")
            hit = self.ctx.lookups.find(key, try_symbols, refresh)
        except InvalidKey:
            hit = None  # e.g. ".." components or too long: valid in a URL, never stored
        except StorageError as exc:
            logger.error("storage lookup of %s failed: %s", key, exc)
            raise JSONError(
                falcon.HTTP_503,
                "The symbol storage could not be reached; try again shortly.",
                headers={"Retry-After": "5", **CORS_HEADERS},
            ) from exc
        elapsed = time.perf_counter() - started
        if debug:
            resp.set_header("Debug-Time", f"{elapsed:.6f}")

        if hit is not None:
            age = hit.age_days()
            if age is not None:
                metrics.histogram(
                    "symboldownloader.file_age_days",
                    value=age,
                    tags=[f"storage:{'try' if hit.backend.is_try else 'regular'}"],
                )
            # Tecken answers both with an HTML content type (clients log it).
            resp.content_type = falcon.MEDIA_HTML
            if req.method == "HEAD":
                resp.status = falcon.HTTP_200
            else:
                resp.status = falcon.HTTP_302
                resp.set_header("Location", hit.backend.download_url(key))
            return

        if symbols_file.endswith(".sym") and len(debug_id) < 33:
            try:
                info = self.ctx.lookups.syminfo(debug_file, debug_id, try_symbols, refresh)
            except Exception as exc:  # the fallback must not turn a 404 into a 500
                logger.error("code-id lookup of %s/%s failed: %s", debug_file, debug_id, exc)
                info = None
            if info is not None and redirectable(info.debug_filename, info.debug_id):
                metrics.incr("download_symbol_code_id_lookup")
                # The request's try form is kept: /try/ for /try/ and ?try
                # requests, and the whole query string.
                location = "/{}{}/{}/{}".format(
                    "try/" if try_symbols else "",
                    quote(info.debug_filename, safe=""),
                    quote(info.debug_id, safe=""),
                    quote(symbols_file, safe=""),
                )
                if req.query_string:
                    location += "?" + req.query_string
                resp.status = falcon.HTTP_302
                resp.content_type = falcon.MEDIA_HTML
                resp.set_header("Location", location)
                return

        if req.method == "GET":
            self.ctx.missing.record(
                debug_file,
                debug_id,
                symbols_file,
                req.get_param("code_file") or "",
                (req.get_param("code_id") or "").upper(),
            )
        resp.status = falcon.HTTP_404
        resp.content_type = falcon.MEDIA_HTML
        resp.text = NOT_FOUND

    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        with metrics.timer("download_symbol"):
            self._answer(
                req, resp, params["debug_file"], params["debug_id"], params["symbols_file"]
            )
        self.ctx.downloads.record(resp)

    def on_head(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        self.on_get(req, resp, **params)

    def on_options(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        resp.set_headers(CORS_HEADERS)
        raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])


def _has_param(req: falcon.Request, name: str) -> bool:
    """Whether ``name`` is in the query string, even with an empty value."""
    qs = req.query_string
    if not qs:
        return False
    for part in qs.split("&"):
        if part.split("=", 1)[0] == name:
            return True
    return False


def add_download_routes(app: falcon.App, ctx: AppContext) -> None:
    regular = DownloadResource(ctx)
    try_ = DownloadResource(ctx, force_try=True)
    app.add_route("/{debug_file}/{debug_id}/{symbols_file}", regular)
    app.add_route("/try/{debug_file}/{debug_id}/{symbols_file}", try_)
