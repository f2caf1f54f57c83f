# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Building crash submissions the way crash reporters do: ``multipart/form-data``
with annotations as text fields (or one JSON ``extra`` part) and dumps as file
parts, optionally gzip-compressed. Used by the submit command, tests and the
benchmark."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any


def encode_multipart(
    annotations: dict[str, Any],
    dumps: dict[str, bytes],
    *,
    as_json: bool = False,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """Return ``(body, content_type)``. ``as_json`` sends the annotations as one
    ``extra`` part of type application/json; otherwise one text part each."""
    boundary = boundary or uuid.uuid4().hex
    dash = f"--{boundary}".encode()
    chunks: list[bytes] = []
    if as_json:
        chunks += [
            dash,
            b'\r\nContent-Disposition: form-data; name="extra"\r\n'
            b"Content-Type: application/json\r\n\r\n",
            json.dumps(annotations).encode("utf-8"),
            b"\r\n",
        ]
    else:
        for name, value in annotations.items():
            text = value if isinstance(value, str) else json.dumps(value)
            chunks += [
                dash,
                f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
                text.encode("utf-8"),
                b"\r\n",
            ]
    for name, data in dumps.items():
        chunks += [
            dash,
            f'\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.dmp"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            b"\r\n",
        ]
    chunks += [dash, b"--\r\n"]
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def compress(body: bytes, level: int = 6) -> bytes:
    return gzip.compress(body, compresslevel=level)
