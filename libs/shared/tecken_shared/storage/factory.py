# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Build a storage backend from a URL.

``file:///var/data/symbols?public_url=http://localhost:3000/files``
    Local filesystem rooted at the path. ``public_url`` is the base of
    :meth:`Storage.public_url`. ``durable=false`` skips fsync (tests, caches).

``s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=us-east-1&path_style=true``
    S3. Also ``public_url`` (e.g. a CDN), ``presign`` (seconds; presigned GET
    URLs), ``connect_timeout`` and ``read_timeout``. Credentials come from the
    usual AWS environment variables or instance roles, never from the URL.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from everett.manager import parse_bool

from tecken_shared.storage.base import Storage


def _params(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query).items()}


def storage_from_url(url: str) -> Storage:
    """A Storage for ``url``. Raises ValueError naming what is wrong."""
    parts = urlsplit(url)
    params = _params(parts.query)
    if parts.scheme == "file":
        from tecken_shared.storage.filesystem import FilesystemStorage

        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost"):
            # file://relative/dir: accept as a path relative to the cwd.
            path = parts.netloc + path
        if not path:
            raise ValueError(f"storage URL {url!r} has no path")
        return FilesystemStorage(
            path,
            public_url_base=params.get("public_url", ""),
            durable=parse_bool(params.get("durable", "true")),
        )
    if parts.scheme == "s3":
        from tecken_shared.storage.s3 import S3Storage

        if not parts.netloc:
            raise ValueError(f"storage URL {url!r} has no bucket name")
        known = {
            "endpoint_url",
            "region",
            "path_style",
            "public_url",
            "presign",
            "connect_timeout",
            "read_timeout",
        }
        unknown = set(params) - known
        if unknown:
            raise ValueError(
                f"storage URL {url!r}: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return S3Storage(
            parts.netloc,
            parts.path.strip("/"),
            endpoint_url=params.get("endpoint_url") or None,
            region=params.get("region") or None,
            path_style=parse_bool(params.get("path_style", "true")),
            public_url_base=params.get("public_url", ""),
            presign_seconds=int(params.get("presign", "0")),
            connect_timeout=float(params.get("connect_timeout", "5")),
            read_timeout=float(params.get("read_timeout", "60")),
        )
    raise ValueError(f"storage URL {url!r}: scheme must be file:// or s3://")
