# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""S3 storage through boto3. Works with AWS and S3-compatible servers (MinIO,
Ceph RGW, R2, GCS interop) through ``endpoint_url`` and path-style addressing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import SplitResult, quote

import boto3
import botocore.exceptions
from botocore.config import Config
from everett.manager import parse_bool

from tecken_shared.storage.base import (
    DirectUpload,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    check_bucket_url,
    check_key,
)

NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
MD5_RE = re.compile(r"[0-9a-f]{32}")
#: boto3 parameter -> HTTP header of a PUT.
HEADERS = {
    "ContentType": "Content-Type",
    "ContentEncoding": "Content-Encoding",
    "CacheControl": "Cache-Control",
}


def _etag_md5(etag: str | None) -> str | None:
    """The md5 an ETag is for a single-part, unencrypted-by-KMS object; None
    for a multipart ETag (``<hex>-<parts>``)."""
    value = (etag or "").strip('"')
    return value if MD5_RE.fullmatch(value) else None


class S3Storage(Storage):
    #: A presigned PUT per object.
    direct_upload_protocol = "s3-presigned-put"
    #: Known query parameters of an ``s3://`` storage URL.
    URL_PARAMS = (
        "endpoint_url",
        "region",
        "path_style",
        "public_url",
        "presign",
        "connect_timeout",
        "read_timeout",
    )

    @classmethod
    def from_url(cls, url: str, parts: SplitResult, params: dict[str, str]) -> S3Storage:
        check_bucket_url(url, parts, params, cls.URL_PARAMS)
        return cls(
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

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = True,
        public_url_base: str = "",
        presign_seconds: int = 0,
        access_key: str | None = None,
        secret_key: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_attempts: int = 3,
        max_pool_connections: int = 32,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.public_url_base = public_url_base.rstrip("/")
        self.presign_seconds = presign_seconds
        self.name = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "auto"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
        )
        session = boto3.session.Session()
        self.client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        if isinstance(exc, botocore.exceptions.EndpointConnectionError):
            return StorageError(
                f"{self.name}: cannot reach the S3 endpoint to {action} {key!r}: {exc}"
            )
        return StorageError(f"{self.name}: cannot {action} {key!r}: {exc}")

    def metadata(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
                return None
            raise self._error("stat", key, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error("stat", key, exc) from exc
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            content_type=resp.get("ContentType"),
            content_encoding=resp.get("ContentEncoding"),
            cache_control=resp.get("CacheControl"),
            metadata=dict(resp.get("Metadata") or {}),
            last_modified=resp.get("LastModified"),
            md5=_etag_md5(resp.get("ETag")),
        )

    @staticmethod
    def _extra(
        content_type: str | None,
        content_encoding: str | None,
        cache_control: str | None,
        metadata: dict[str, str] | None,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        if cache_control:
            extra["CacheControl"] = cache_control
        if metadata:
            extra["Metadata"] = metadata
        return extra

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
        extra = self._extra(content_type, content_encoding, cache_control, metadata)
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
            else:
                self.client.upload_fileobj(data, self.bucket, self._key(key), ExtraArgs=extra)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("write", key, exc) from exc
        except boto3.exceptions.S3UploadFailedError as exc:
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
        """A presigned PUT: the headers (and ``Content-Length`` when ``size``
        is given) are signed, so the client must send them as given."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            **self._extra(content_type, content_encoding, cache_control, metadata),
        }
        if size is not None:
            params["ContentLength"] = size
        try:
            url = self.client.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=expires, HttpMethod="PUT"
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("presign an upload of", key, exc) from exc
        # The signed headers the client must send, named as on the wire.
        headers = {HEADERS[name]: value for name, value in params.items() if name in HEADERS}
        for name, value in (metadata or {}).items():
            headers[f"x-amz-meta-{name}"] = value
        return DirectUpload(url, headers)

    def open(self, key: str) -> BinaryIO:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
                raise ObjectNotFound(f"{self.name}: no object {key!r}") from exc
            raise self._error("read", key, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error("read", key, exc) from exc
        return resp["Body"]

    def delete(self, key: str) -> bool:
        existed = self.exists(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("delete", key, exc) from exc
        return existed

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = (f"{self.prefix}/" if self.prefix else "") + prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"][strip:],
                        size=item["Size"],
                        last_modified=item.get("LastModified"),
                    )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("list", prefix, exc) from exc

    def public_url(self, key: str) -> str:
        full = self._key(key)
        if self.public_url_base:
            return f"{self.public_url_base}/{quote(full)}"
        if self.presign_seconds:
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": full},
                ExpiresIn=self.presign_seconds,
            )
        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{quote(full)}"
        return f"https://{self.bucket}.s3.amazonaws.com/{quote(full)}"

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise StorageError(f"{self.name}: bucket not reachable: {exc}") from exc

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist (local development and tests)."""
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise StorageError(f"{self.name}: cannot create bucket: {exc}") from exc
