# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""debuginfod downloads from the same store (elfutils' web API):

* ``/buildid/<id>/debuginfo`` and ``/buildid/<id>/executable``: from the
  identity index (an ELF debug file, gzipped or not, or an unstripped or
  stripped ELF object uploaded under its Tecken key); 302 to storage with
  ``X-DEBUGINFOD-SIZE``, ``X-DEBUGINFOD-FILE`` and, when the file was expanded
  from the stored object, ``X-DEBUGINFOD-ARCHIVE`` (the client keeps the
  headers of every answer of a redirect chain); 406 when the size is over the
  request's ``X-DEBUGINFOD-MAXSIZE``;
* ``/buildid/<id>/source/<path>``: the file from the build id's uploaded
  source bundle (``sentry-cli debug-files bundle-sources``), served by this
  service (200), else 404;
* ``/buildid/<id>/section/<name>``: 503, so clients fetch the whole file and
  extract the section themselves.

``/metrics`` is the service's Prometheus endpoint (``tecken.protocol_download``
counts these answers). A miss is a 404 (the client caches it)."""

from __future__ import annotations

import logging
import re
import time

import falcon

from tecken_symbols import identities
from tecken_symbols.context import AppContext
from tecken_symbols.protocol_answers import (
    FAILURES,
    Found,
    Resolver,
    answer_not_found,
    start,
    timed,
)

logger = logging.getLogger(__name__)

PROTOCOL = "debuginfod"
#: A build id: hex, 2 to 64 bytes (GNU ones are 20, some linkers write 8 or 16).
BUILD_ID_RE = re.compile(r"(?:[0-9A-Fa-f]{2}){2,64}")
ARTIFACTS = (identities.DEBUGINFO, identities.EXECUTABLE)
MAX_SOURCE_PATH = 4096


class ArtifactResource:
    """``/buildid/<id>/debuginfo|executable``."""

    def __init__(self, ctx: AppContext, resolver: Resolver) -> None:
        self.ctx = ctx
        self.resolver = resolver

    def _answer(
        self, req: falcon.Request, resp: falcon.Response, build_id: str, artifact: str
    ) -> str:
        if artifact not in ARTIFACTS or not BUILD_ID_RE.fullmatch(build_id):
            answer_not_found(resp)
            return "miss"
        return self.resolver.answer(
            req,
            resp,
            identities.debuginfod_key(build_id, artifact),
            protocol=PROTOCOL,
            missing=("buildid", build_id.upper(), artifact),
            max_size=_max_size(req),
            headers=_headers,
        )

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, build_id: str, artifact: str
    ) -> None:
        started = time.perf_counter()
        start(resp, self.ctx)
        timed(PROTOCOL, started, self._answer(req, resp, build_id, artifact))

    def on_head(
        self, req: falcon.Request, resp: falcon.Response, build_id: str, artifact: str
    ) -> None:
        self.on_get(req, resp, build_id, artifact)


def _headers(found: Found) -> dict[str, str]:
    entry = found.entry
    headers = {"X-DEBUGINFOD-FILE": entry.file_name}
    if entry.size is not None:
        headers["X-DEBUGINFOD-SIZE"] = str(entry.size)
    if entry.transform != identities.IDENTITY:
        headers["X-DEBUGINFOD-ARCHIVE"] = entry.object_key
    return headers


def _max_size(req: falcon.Request) -> int | None:
    value = (req.get_header("X-DEBUGINFOD-MAXSIZE") or "").strip()
    if not value.isdigit() or len(value) > 20:
        return None
    return int(value)


class SourceResource:
    """``/buildid/<id>/source/<path>``: the file of that absolute path in
    the build id's source bundle (``name.src.zip`` uploaded under its Tecken
    key), 200 with its bytes; 404 when there is no bundle or it lacks the
    file (a GET recorded as a missing symbol ``source``)."""

    def __init__(self, ctx: AppContext, resolver: Resolver) -> None:
        self.ctx = ctx
        self.resolver = resolver

    def _answer(self, req: falcon.Request, resp: falcon.Response, build_id: str, path: str) -> str:
        if not BUILD_ID_RE.fullmatch(build_id) or len(path) > MAX_SOURCE_PATH:
            answer_not_found(resp)
            return "miss"
        try:
            entry = self.ctx.lookups.identity(
                identities.debuginfod_key(build_id, identities.SOURCES)
            )
            hit = self.ctx.lookups.find(entry.object_key, False) if entry else None
            found = None
            if entry is not None and hit is not None:
                bundle = self.resolver.read(entry, hit.backend)
                found = identities.bundle_source(bundle, path, self.ctx.upload.identity_max_size)
        except FAILURES as exc:
            logger.error("debuginfod source %s of %s failed: %s", path, build_id, exc)
            answer_not_found(resp)
            return "error"
        if entry is None or found is None:
            if req.method == "GET":
                self.ctx.missing.record("buildid", build_id.upper(), "source", protocol=PROTOCOL)
            answer_not_found(resp)
            return "miss"
        _member, data = found
        resp.set_headers(
            {
                "X-DEBUGINFOD-SIZE": str(len(data)),
                "X-DEBUGINFOD-FILE": identities.normalise_source_path(path),
                "X-DEBUGINFOD-ARCHIVE": entry.object_key,
            }
        )
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_TEXT
        if req.method == "GET":
            resp.data = data
        else:
            resp.content_length = len(data)
        return "hit"

    def on_get(self, req: falcon.Request, resp: falcon.Response, build_id: str, path: str) -> None:
        started = time.perf_counter()
        start(resp, self.ctx)
        timed(PROTOCOL, started, self._answer(req, resp, build_id, path))

    def on_head(self, req: falcon.Request, resp: falcon.Response, build_id: str, path: str) -> None:
        self.on_get(req, resp, build_id, path)


class SectionResource:
    """``/buildid/<id>/section/<name>``: 503, the client's cue to fetch the
    whole debuginfo or executable and read the section itself."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, build_id: str, name: str) -> None:
        start(resp, self.ctx)
        resp.status = falcon.HTTP_503
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Sections are not served; fetch the debuginfo or executable."

    on_head = on_get


def add_debuginfod_routes(app: falcon.App, ctx: AppContext) -> None:
    resolver = Resolver(ctx)
    app.add_route("/buildid/{build_id}/{artifact}", ArtifactResource(ctx, resolver))
    app.add_route("/buildid/{build_id}/source/{path:path}", SourceResource(ctx, resolver))
    app.add_route("/buildid/{build_id}/section/{name}", SectionResource(ctx))
