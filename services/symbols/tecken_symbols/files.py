# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Serves objects of filesystem storages that have no ``public_url`` of their
own, under ``/files/<label>/<key>``: the target of download redirects in the
embedded set-up. Objects go out as stored, with their Content-Type,
Content-Encoding (``gzip`` for compressed ``.sym``) and Cache-Control."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import falcon

from tecken_shared.storage import InvalidKey, ObjectInfo, ObjectNotFound, StorageError
from tecken_symbols.context import AppContext
from tecken_symbols.storages import FILES_PREFIX, Backend

CHUNK = 256 * 1024


def entity_tag(info: ObjectInfo) -> str:
    """A strong ETag of the stored bytes: their size and last-modified time
    (a rewrite of the key changes the time), plus the original's md5 when the
    upload recorded one."""
    stamp = int(info.last_modified.timestamp() * 1000) if info.last_modified else 0
    md5 = info.metadata.get("original_md5_hash", "")
    return f"{info.size:x}-{stamp:x}" + (f"-{md5}" if md5 else "")


def not_modified(req: falcon.Request, etag: str, last_modified: datetime | None) -> bool:
    """Whether a conditional GET/HEAD may be answered 304 (RFC 9110 13.2.2:
    If-None-Match wins over If-Modified-Since)."""
    if_none_match = req.get_header("If-None-Match")
    if if_none_match:
        tags = [t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = req.get_header("If-Modified-Since")
    if since and last_modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return last_modified.replace(microsecond=0) <= when
    return False


class FilesResource:
    def __init__(self, backend: Backend, headers: dict[str, str] | None = None) -> None:
        self.backend = backend
        self.headers = headers or {}

    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        storage = self.backend.storage
        try:
            info = storage.metadata(key)
            if info is None:
                raise ObjectNotFound(key)
            stream = None if req.method == "HEAD" else storage.open(key)
        except (InvalidKey, ObjectNotFound):
            resp.status = falcon.HTTP_404
            resp.media = {"error": "Not Found", "path": req.path}
            return
        except StorageError as exc:
            raise falcon.HTTPServiceUnavailable(
                title="Storage Unavailable", description=str(exc)
            ) from exc
        resp.set_headers(self.headers)
        etag = entity_tag(info)
        resp.etag = etag
        if info.last_modified:
            resp.last_modified = info.last_modified
        if not_modified(req, etag, info.last_modified):
            if stream is not None:
                stream.close()
            resp.status = falcon.HTTP_304
            return
        resp.content_type = info.content_type or "application/octet-stream"
        if info.content_encoding:
            resp.set_header("Content-Encoding", info.content_encoding)
        if info.cache_control:
            resp.cache_control = [info.cache_control]
        resp.set_header("Access-Control-Allow-Origin", "*")
        # Uploaded bytes served from the UI's origin: never sniffed into
        # something a browser would run (RT-19).
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.content_length = info.size
        if stream is not None:
            resp.stream = stream

    on_head = on_get


def add_files_routes(app: falcon.App, ctx: AppContext) -> None:
    for backend in ctx.storages.all():
        if backend.served_locally:
            app.add_route(
                f"{FILES_PREFIX}/{backend.label}/{{key:path}}",
                FilesResource(backend, ctx.download_headers),
            )
