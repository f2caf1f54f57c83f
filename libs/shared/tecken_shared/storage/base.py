# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The storage interface shared by every backend."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO
from urllib.parse import SplitResult


class StorageError(Exception):
    """The backend failed or could not be reached. The message names the backend
    and says what went wrong, so an operator can act on it."""


class ObjectNotFound(StorageError, KeyError):
    """No object under that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class InvalidKey(StorageError, ValueError):
    """The key is empty, absolute, or contains '..', NUL or backslashes."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None = None
    content_encoding: str | None = None
    cache_control: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    #: The md5 (hex) of the stored bytes when the backend keeps it (GCS's
    #: ``md5Hash``, S3's ETag of a single-part object), else None.
    md5: str | None = None


@dataclass(frozen=True)
class DirectUpload:
    """Where a client uploads one object straight to the storage: ``url``,
    with ``headers`` it must send as given (see :meth:`Storage.direct_upload`)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise InvalidKey."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid storage key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


def check_bucket_url(
    url: str, parts: SplitResult, params: dict[str, str], known: tuple[str, ...]
) -> None:
    """Raise ValueError unless a bucket storage URL names a bucket and only
    ``known`` query parameters."""
    if not parts.netloc:
        raise ValueError(f"storage URL {url!r} has no bucket name")
    unknown = set(params) - set(known)
    if unknown:
        raise ValueError(
            f"storage URL {url!r}: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}"
        )


class Storage(abc.ABC):
    """Keys are '/'-separated relative paths. Metadata keys and values are
    plain ASCII strings (S3 lower-cases metadata keys; use lower-case)."""

    #: A description safe to log (no credentials).
    name: str
    #: Whether asking if an object exists costs about as little as a cache
    #: look-up (a local ``stat``), so callers need not cache the answer.
    cheap_exists: bool = False

    #: The protocol of :meth:`direct_upload` (``gcs-resumable``,
    #: ``s3-presigned-put``), or None when clients cannot upload straight to
    #: this backend.
    direct_upload_protocol: str | None = None

    @property
    def has_public_url(self) -> bool:
        """Whether :meth:`public_url` gives a URL clients can fetch; when not,
        the service holding the storage must serve its objects itself."""
        return True

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, parts: SplitResult, params: dict[str, str]) -> Storage:
        """The backend a storage URL names (see :mod:`tecken_shared.storage.factory`).
        Raises ValueError naming what is wrong."""

    @abc.abstractmethod
    def metadata(self, key: str) -> ObjectInfo | None:
        """Size, content type/encoding and custom metadata, or None if missing."""

    def exists(self, key: str) -> bool:
        return self.metadata(key) is not None

    @abc.abstractmethod
    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        cache_control: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Store ``data`` (bytes or a readable binary file) under ``key``. The
        object becomes visible whole or not at all."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable stream of the stored bytes (as stored: not decoded).
        Raises ObjectNotFound. The caller closes it."""

    def get(self, key: str) -> bytes:
        """All stored bytes. Raises ObjectNotFound."""
        with self.open(key) as stream:
            return stream.read()

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Delete ``key``; returns whether it existed."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def public_url(self, key: str) -> str:
        """A URL a client can GET the object from (the target of a redirect)."""

    def direct_upload(
        self,
        key: str,
        *,
        size: int | None,
        expires: int,
        content_type: str | None = None,
        content_encoding: str | None = None,
        cache_control: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> DirectUpload:
        """Let a client write ``key`` itself: the object it uploads gets these
        headers and metadata; ``size`` (when known) is the exact length the
        storage should accept; the URL stays valid at least ``expires``
        seconds. Raises StorageError (NotImplementedError when
        :attr:`direct_upload_protocol` is None)."""
        raise NotImplementedError(f"{self.name}: no direct uploads")

    @abc.abstractmethod
    def check(self) -> None:
        """Raise StorageError unless the backend is reachable and writable
        (for /__heartbeat__)."""
