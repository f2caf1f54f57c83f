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

``gs://bucket/prefix?public_url=https://cdn.example.com``
    Google Cloud Storage. Also ``signed`` (seconds; V4 signed GET URLs for a
    private bucket), ``endpoint_url`` (an emulator; anonymous), ``project``
    and ``timeout``. Credentials come from Application Default Credentials.
"""

from __future__ import annotations

import importlib
from urllib.parse import parse_qs, urlsplit

from tecken_shared.storage.base import Storage


def _params(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query).items()}


#: URL scheme -> backend class; a new backend is one module and one line here.
BACKENDS: dict[str, str] = {
    "file": "tecken_shared.storage.filesystem:FilesystemStorage",
    "s3": "tecken_shared.storage.s3:S3Storage",
    "gs": "tecken_shared.storage.gcs:GCSStorage",
}


def storage_from_url(url: str) -> Storage:
    """A Storage for ``url``. Raises ValueError naming what is wrong."""
    parts = urlsplit(url)
    path = BACKENDS.get(parts.scheme)
    if path is None:
        schemes = " or ".join(f"{s}://" for s in BACKENDS)
        raise ValueError(f"storage URL {url!r}: scheme must be {schemes}")
    module, _, name = path.partition(":")
    backend: type[Storage] = getattr(importlib.import_module(module), name)
    return backend.from_url(url, parts, _params(parts.query))
