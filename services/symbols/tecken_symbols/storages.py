# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The ordered list of storage backends: regular (upload target), try (upload
target for try builds) and extra read-only ones, each built from a URL by the
shared storage library.

Download order: a regular request searches ``[regular, *extras]``; a try
request searches ``[regular, try, *extras]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from tecken_shared.storage import Storage, storage_from_url

FILES_PREFIX = "/files"


def bucket_of(storage_name: str) -> str:
    """The bucket named by a storage's name (``s3://bucket/prefix at
    endpoint`` or ``gs://…``); empty for the filesystem (``file://``)."""
    scheme, _, rest = storage_name.partition("://")
    if scheme == "file" or not rest:
        return ""
    return rest.split(" at ", 1)[0].split("/", 1)[0]


@dataclass
class Backend:
    """One storage backend and how downloads reach its objects."""

    label: str  # "regular", "try", "extra1", ...
    storage: Storage
    is_try: bool = False
    writable: bool = False
    #: A storage with no public URL of its own: served by this service under /files/<label>/.
    served_locally: bool = False
    local_base: str = ""

    @property
    def name(self) -> str:
        """Safe to log, to record as an upload's ``bucket_name`` and to show
        to any token holder: the bucket's name alone, as Tecken records it
        (``publicbucket``: no scheme, key prefix or endpoint) or, for the
        filesystem, the label (``regular``, ``try``), never a path of this
        host (RT-18)."""
        return bucket_of(self.storage.name) or self.label

    def download_url(self, key: str) -> str:
        """Where a download of ``key`` redirects to."""
        if self.served_locally:
            return f"{self.local_base}/{quote(key)}"
        return self.storage.public_url(key)


@dataclass
class Storages:
    regular: Backend
    try_: Backend
    extras: list[Backend] = field(default_factory=list)

    def all(self) -> list[Backend]:
        return [self.regular, self.try_, *self.extras]

    def for_download(self, try_symbols: bool) -> list[Backend]:
        if try_symbols:
            return [self.regular, self.try_, *self.extras]
        return [self.regular, *self.extras]

    def upload_backend(self, try_symbols: bool) -> Backend:
        return self.try_ if try_symbols else self.regular

    def by_label(self, label: str) -> Backend | None:
        for backend in self.all():
            if backend.label == label:
                return backend
        return None


def make_backend(
    label: str, url: str, public_base: str, *, is_try: bool, writable: bool
) -> Backend:
    storage = storage_from_url(url)
    local = not storage.has_public_url
    return Backend(
        label=label,
        storage=storage,
        is_try=is_try,
        writable=writable,
        served_locally=local,
        local_base=f"{public_base.rstrip('/')}{FILES_PREFIX}/{label}" if local else "",
    )


def build_storages(
    storage_url: str, try_storage_url: str, extra_urls: list[str], public_url: str
) -> Storages:
    """Raises ValueError naming a bad URL."""
    return Storages(
        regular=make_backend("regular", storage_url, public_url, is_try=False, writable=True),
        try_=make_backend("try", try_storage_url, public_url, is_try=True, writable=True),
        extras=[
            make_backend(f"extra{i}", url, public_url, is_try=False, writable=False)
            for i, url in enumerate((u for u in extra_urls if u.strip()), start=1)
        ],
    )
