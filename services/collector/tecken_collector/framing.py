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
  runs to the end of the body and the form is broken after it."""

from __future__ import annotations

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

    def exhaust(self) -> None:
        self.pos = len(self.view)


def _broken(description: str) -> MultipartParseError:
    return MultipartParseError(description=description)


def iter_parts(
    body: bytes | bytearray, boundary: bytes, options: MultipartParseOptions
) -> Iterator[BodyPart]:
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
            yield BodyPart(MemoryStream(view[pos:]), headers, options)  # type: ignore[arg-type]
            raise _broken("unexpected form structure")
        yield BodyPart(MemoryStream(view[pos:end]), headers, options)  # type: ignore[arg-type]
        pos = end + len(delimiter)
