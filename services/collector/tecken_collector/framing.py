# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Splitting a multipart body that is already in memory into parts.

Typical crash reports (a few hundred KB) are read whole and split here with
``bytes.find``, which costs a fraction of Falcon's streaming parser; bigger
bodies go through Falcon's parser. Both yield Falcon ``BodyPart`` objects and
follow the same rules, step for step, so a body is accepted or refused the same
way by either (the tests feed both the same bodies, malformed ones included):

* everything before the first ``--boundary`` is skipped;
* after a boundary, ``--`` ends the form; otherwise CRLF must follow at once;
* the part headers end at the first CRLFCRLF, within ``max_body_part_headers_size``;
* header lines are ``Name: value``; only Content-Type and Content-Disposition
  are kept; a Content-Transfer-Encoding other than ``binary`` is an error;
* a part ends at the next CRLF ``--boundary``; when there is none, the part
  runs to the end of the body and the form is broken after it.

Parts whose headers have the plain form every crash reporter sends
(``Content-Disposition: form-data; name="..."`` with an optional
``filename``, printable ASCII without quotes, backslashes or semicolons, and
no or a bare ``text/plain``, ``application/json`` or
``application/octet-stream`` type) are yielded as :class:`PlainPart`, which
reads those headers with one regular expression instead of Falcon's general
header parser (two parses per part, most of the cost of splitting a crash
report with fifty annotations); any other part is a Falcon ``BodyPart``."""

from __future__ import annotations

import re
from collections.abc import Iterator

from falcon.media.multipart import BodyPart, MultipartParseError, MultipartParseOptions

CRLF = b"\r\n"
CRLFCRLF = b"\r\n\r\n"
#: The part header fields kept (RFC 7578 4.8: others are ignored), the same set
#: as Falcon's streaming parser keeps in its private ``_ALLOWED_CONTENT_HEADERS``
#: (a test compares the two, so a Falcon upgrade that changes it is noticed).
ALLOWED_PART_HEADERS = frozenset(
    {b"content-type", b"content-disposition", b"content-transfer-encoding"}
)


#: The plain Content-Disposition of a form field, read the way Falcon's parser
#: reads it (a quoted value without quotes, backslashes or semicolons is its
#: content, as is).
PLAIN_DISPOSITION = re.compile(
    rb'form-data; name="([ !#-:<-\[\]-~]*)"(?:; filename="([ !#-:<-\[\]-~]*)")?'
)
PLAIN_CONTENT_TYPES = frozenset({b"text/plain", b"application/json", b"application/octet-stream"})


class PlainPart:
    """A part with plain headers (see the module's description): the same
    attributes and answers as Falcon's ``BodyPart`` for those headers."""

    __slots__ = ("stream", "name", "filename", "content_type", "_max_data", "_data")

    def __init__(
        self,
        stream: MemoryStream,
        name: str,
        filename: str | None,
        content_type: str,
        options: MultipartParseOptions,
    ) -> None:
        self.stream = stream
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self._max_data = options.max_body_part_buffer_size
        self._data: bytes | None = None

    def get_data(self) -> bytes:
        if self._data is None:
            self._data = self.stream.read(self._max_data + 1)
            if len(self._data) > self._max_data:
                raise _broken("body part is too large")
        return self._data

    def get_text(self) -> str | None:
        # Only a bare text/plain (no charset) is a PlainPart: UTF-8, the
        # collector's default charset, as in Falcon's parser.
        if self.content_type != "text/plain":
            return None
        try:
            return self.get_data().decode("utf-8")
        except ValueError as exc:
            raise _broken("invalid text or charset: utf-8") from exc


def _part(
    view: memoryview, headers: dict[bytes, bytes], options: MultipartParseOptions
) -> BodyPart | PlainPart:
    stream = MemoryStream(view)
    content_type = headers.get(b"content-type", b"text/plain")
    match = PLAIN_DISPOSITION.fullmatch(headers.get(b"content-disposition", b""))
    if match is None or content_type not in PLAIN_CONTENT_TYPES:
        return BodyPart(stream, headers, options)  # type: ignore[arg-type]
    name, filename = match.groups()
    return PlainPart(
        stream,
        name.decode("ascii"),
        None if filename is None else filename.decode("ascii"),
        content_type.decode("ascii"),
        options,
    )


class MemoryStream:
    """The ``read()`` of a part's bytes (a view into the body, no copy up front)."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.pos + size)
        data = bytes(self.view[self.pos : end])
        self.pos = end
        return data

    def rest(self) -> memoryview:
        """What is left to read, as a view (no copy); the stream is then at its end."""
        rest = self.view[self.pos :]
        self.pos = len(self.view)
        return rest

    def exhaust(self) -> None:
        self.pos = len(self.view)


def _broken(description: str) -> MultipartParseError:
    return MultipartParseError(description=description)


def iter_parts(
    body: bytes | bytearray, boundary: bytes, options: MultipartParseOptions
) -> Iterator[BodyPart | PlainPart]:
    """Parts of a complete multipart ``body``, lazily (a part is yielded before
    anything after it is looked at, as with a stream)."""
    view = memoryview(body)
    dash_boundary = b"--" + boundary
    delimiter = CRLF + dash_boundary
    max_headers = options.max_body_part_headers_size

    start = body.find(dash_boundary)
    if start < 0:
        raise _broken("unexpected form structure")
    pos = start + len(dash_boundary)
    while True:
        if body[pos : pos + 2] == b"--":
            return
        if body[pos : pos + 2] != CRLF:
            raise _broken("unexpected form structure")
        pos += 2

        end_headers = body.find(CRLFCRLF, pos)
        if end_headers < 0 or end_headers - pos > max_headers:
            raise _broken("incomplete body part headers")
        headers: dict[bytes, bytes] = {}
        for line in bytes(body[pos:end_headers]).split(CRLF):
            name, sep, value = line.partition(b": ")
            if sep:
                name = name.lower()
                if name == b"content-transfer-encoding" and value != b"binary":
                    raise _broken(
                        "the deprecated Content-Transfer-Encoding header field is unsupported"
                    )
                elif name in ALLOWED_PART_HEADERS:
                    headers[name] = value
        pos = end_headers + 4

        end = body.find(delimiter, pos)
        if end < 0:
            yield _part(view[pos:], headers, options)
            raise _broken("unexpected form structure")
        yield _part(view[pos:end], headers, options)
        pos = end + len(delimiter)
