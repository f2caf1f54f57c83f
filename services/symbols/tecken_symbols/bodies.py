# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Request bodies sent with ``Transfer-Encoding: chunked`` (RT-24, RT-10).

gunicorn de-chunks them, but Falcon's ``bounded_stream`` reads nothing without
a ``Content-Length`` and its multipart parser needs one. :func:`body_stream`
is the stream to read a body from whatever its framing; :func:`spool_chunked`
copies a chunked body (bounded) into a temporary file and makes the request
look like one with a ``Content-Length``, for parsers that need the length."""

from __future__ import annotations

from typing import IO

import falcon

from tecken_symbols.upload.archive import spool_stream


def is_chunked(req: falcon.Request) -> bool:
    """A body without Content-Length, framed by chunked transfer-encoding."""
    encoding = (req.get_header("Transfer-Encoding") or "").lower()
    return req.content_length is None and "chunked" in encoding


def body_stream(req: falcon.Request) -> IO[bytes]:
    """The stream the body is read from (to its end, never past it)."""
    return req.stream if is_chunked(req) else req.bounded_stream  # type: ignore[return-value]


def spool_chunked(req: falcon.Request, limit: int, directory: str) -> str | None:
    """For a chunked body: copy it into a temporary file in ``directory`` (413
    past ``limit`` bytes) and point the request at that file with its
    length; returns the file's path for the caller to remove. None (and
    nothing done) for a body with a Content-Length."""
    if not is_chunked(req):
        return None
    path, size = spool_stream(req.stream, directory, limit)  # type: ignore[arg-type]
    req.env["wsgi.input"] = open(path, "rb")  # noqa: SIM115 - closed with the request
    req.env["CONTENT_LENGTH"] = str(size)
    req.stream = req.env["wsgi.input"]
    req._bounded_stream = None  # Falcon re-wraps the new input with its length
    return path
