# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Google Cloud Storage through ``google-cloud-storage``: the backend Mozilla
runs Tecken and Antenna on. Credentials come from Application Default
Credentials (a service account, workload identity), never from the URL; with
``endpoint_url`` (an emulator or a GCS-compatible server) the client is
anonymous."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, BinaryIO
from urllib.parse import SplitResult, quote

import google.api_core.exceptions as gexc
import google.auth.exceptions
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as gcs
from google.cloud.storage.retry import DEFAULT_RETRY

from tecken_shared.storage.base import (
    DirectUpload,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    check_bucket_url,
    check_key,
)

#: Errors of the client, its transport and its credentials.
CLIENT_ERRORS = (
    gexc.GoogleAPIError,
    google.auth.exceptions.GoogleAuthError,
    requests.RequestException,
)


def _md5_hex(value: str | None) -> str | None:
    """GCS's ``md5Hash`` (base64) as hex; None when absent or malformed."""
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


class GCSStorage(Storage):
    #: Resumable upload sessions: the client PUTs the bytes to the session URL.
    direct_upload_protocol = "gcs-resumable"
    #: Known query parameters of a ``gs://`` storage URL.
    URL_PARAMS = ("endpoint_url", "project", "public_url", "signed", "timeout")

    @classmethod
    def from_url(cls, url: str, parts: SplitResult, params: dict[str, str]) -> GCSStorage:
        check_bucket_url(url, parts, params, cls.URL_PARAMS)
        return cls(
            parts.netloc,
            parts.path.strip("/"),
            endpoint_url=params.get("endpoint_url") or None,
            project=params.get("project") or None,
            public_url_base=params.get("public_url", ""),
            signed_seconds=int(params.get("signed", "0")),
            timeout=float(params.get("timeout", "60")),
        )

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        project: str | None = None,
        public_url_base: str = "",
        signed_seconds: int = 0,
        timeout: float = 60,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.public_url_base = public_url_base.rstrip("/")
        self.signed_seconds = signed_seconds
        self.timeout = timeout
        #: Retries (of connection errors, 5xx) end within ``timeout`` seconds too.
        self.retry = DEFAULT_RETRY.with_timeout(timeout)
        self.name = f"gs://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        kwargs: dict[str, Any] = {"project": project}
        if self.endpoint_url:
            kwargs["credentials"] = AnonymousCredentials()
            kwargs["client_options"] = {"api_endpoint": self.endpoint_url}
            kwargs["project"] = project or "tecken"
        self._kwargs = kwargs
        self._client: gcs.Client | None = None

    @property
    def client(self) -> gcs.Client:
        """Made on first use: building it looks credentials up."""
        if self._client is None:
            try:
                self._client = gcs.Client(**self._kwargs)
            except CLIENT_ERRORS as exc:
                raise StorageError(f"{self.name}: no usable credentials: {exc}") from exc
        return self._client

    @property
    def bucket(self) -> gcs.Bucket:
        return self.client.bucket(self.bucket_name)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        return StorageError(f"{self.name}: cannot {action} {key!r}: {exc}")

    def _info(self, key: str, blob: gcs.Blob) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=int(blob.size or 0),
            content_type=blob.content_type,
            content_encoding=blob.content_encoding,
            cache_control=blob.cache_control,
            metadata=dict(blob.metadata or {}),
            last_modified=blob.updated,
            md5=_md5_hex(blob.md5_hash),
        )

    def metadata(self, key: str) -> ObjectInfo | None:
        name = self._key(key)
        try:
            blob = self.bucket.get_blob(name, timeout=self.timeout, retry=self.retry)
        except gexc.NotFound:
            blob = None
        except CLIENT_ERRORS as exc:
            raise self._error("stat", key, exc) from exc
        return None if blob is None else self._info(key, blob)

    def _blob_for_write(
        self,
        key: str,
        content_encoding: str | None,
        cache_control: str | None,
        metadata: dict[str, str] | None,
    ) -> gcs.Blob:
        blob = self.bucket.blob(self._key(key))
        blob.content_encoding = content_encoding
        blob.cache_control = cache_control
        blob.metadata = metadata or None
        return blob

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
        blob = self._blob_for_write(key, content_encoding, cache_control, metadata)
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                blob.upload_from_string(
                    bytes(data), content_type=content_type, timeout=self.timeout, retry=self.retry
                )
            else:
                blob.upload_from_file(
                    data, content_type=content_type, timeout=self.timeout, retry=self.retry
                )
        except CLIENT_ERRORS as exc:
            raise self._error("write", key, exc) from exc
        except OSError as exc:
            raise self._error("write", key, exc) from exc

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
        """A resumable upload session (valid a week, whatever ``expires``):
        the object gets the headers and metadata given here."""
        blob = self._blob_for_write(key, content_encoding, cache_control, metadata)
        blob.content_type = content_type
        try:
            url = blob.create_resumable_upload_session(
                content_type=content_type, size=size, timeout=self.timeout
            )
        except CLIENT_ERRORS as exc:
            raise self._error("start an upload session for", key, exc) from exc
        return DirectUpload(url)

    def open(self, key: str) -> BinaryIO:
        blob = self.bucket.blob(self._key(key))
        try:
            blob.reload(timeout=self.timeout, retry=self.retry)
            # As stored: no decompressive transcoding of gzip objects.
            return blob.open("rb", raw_download=True)  # type: ignore[return-value]
        except gexc.NotFound as exc:
            raise ObjectNotFound(f"{self.name}: no object {key!r}") from exc
        except CLIENT_ERRORS as exc:
            raise self._error("read", key, exc) from exc

    def get(self, key: str) -> bytes:
        blob = self.bucket.blob(self._key(key))
        try:
            return blob.download_as_bytes(raw_download=True, timeout=self.timeout, retry=self.retry)
        except gexc.NotFound as exc:
            raise ObjectNotFound(f"{self.name}: no object {key!r}") from exc
        except CLIENT_ERRORS as exc:
            raise self._error("read", key, exc) from exc

    def delete(self, key: str) -> bool:
        try:
            self.bucket.blob(self._key(key)).delete(timeout=self.timeout, retry=self.retry)
        except gexc.NotFound:
            return False
        except CLIENT_ERRORS as exc:
            raise self._error("delete", key, exc) from exc
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = (f"{self.prefix}/" if self.prefix else "") + prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            blobs = sorted(
                self.client.list_blobs(
                    self.bucket_name, prefix=full, timeout=self.timeout, retry=self.retry
                ),
                key=lambda b: b.name,
            )
        except CLIENT_ERRORS as exc:
            raise self._error("list", prefix, exc) from exc
        for blob in blobs:
            yield self._info(blob.name[strip:], blob)

    def public_url(self, key: str) -> str:
        full = self._key(key)
        if self.public_url_base:
            return f"{self.public_url_base}/{quote(full)}"
        if self.signed_seconds:
            try:
                return self.bucket.blob(full).generate_signed_url(
                    expiration=timedelta(seconds=self.signed_seconds), version="v4"
                )
            except (*CLIENT_ERRORS, AttributeError, TypeError) as exc:
                raise self._error("sign a URL for", key, exc) from exc
        base = self.endpoint_url or "https://storage.googleapis.com"
        return f"{base}/{self.bucket_name}/{quote(full)}"

    def check(self) -> None:
        try:
            self.bucket.reload(timeout=self.timeout, retry=self.retry)
        except CLIENT_ERRORS as exc:
            raise StorageError(f"{self.name}: bucket not reachable: {exc}") from exc

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist (local development and tests)."""
        try:
            self.client.create_bucket(self.bucket_name, timeout=self.timeout, retry=self.retry)
        except gexc.Conflict:
            pass
        except CLIENT_ERRORS as exc:
            raise StorageError(f"{self.name}: cannot create bucket: {exc}") from exc
