# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Object storage behind one small interface, with a local-filesystem backend
(atomic, fsync'd writes) and an S3 backend (boto3; AWS, MinIO, Ceph, R2, GCS
interop). Backends are chosen by URL: ``file:///path`` or ``s3://bucket/prefix``."""

from tecken_shared.storage.base import (
    DirectUpload,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
)
from tecken_shared.storage.factory import storage_from_url

__all__ = [
    "DirectUpload",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "storage_from_url",
]
