# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Serves objects of filesystem storages that have no ``public_url`` of their
own, under ``/files/<label>/<key>``: the target of download redirects in the
embedded set-up. Objects go out as stored, with their Content-Type,
Content-Encoding (``gzip`` for compressed ``.sym``) and Cache-Control."""

from __future__ import annotations

import falcon

from tecken_shared.storage import InvalidKey, ObjectNotFound, StorageError
from tecken_symbols.context import AppContext
from tecken_symbols.storages import FILES_PREFIX, Backend

CHUNK = 256 * 1024


class FilesResource:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

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
        resp.content_type = info.content_type or "application/octet-stream"
        if info.content_encoding:
            resp.set_header("Content-Encoding", info.content_encoding)
        if info.cache_control:
            resp.cache_control = [info.cache_control]
        if info.last_modified:
            resp.last_modified = info.last_modified
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
            app.add_route(f"{FILES_PREFIX}/{backend.label}/{{key:path}}", FilesResource(backend))
