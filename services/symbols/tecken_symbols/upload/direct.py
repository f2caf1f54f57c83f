# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""v2 uploads straight to the storage (``gcs-resumable``, ``s3-presigned-put``):
the client writes each object itself, so the service never sees the bytes go
by. Unlike Tecken, each declared file is then *verified and recorded*: when
the client reports completion (``POST /upload/v2/complete/{id}``) or when a
lookup first finds the object, the object's size and md5 are checked (from
the storage's metadata; a gzipped object or a ``.sym`` with the content
checks on is read back), and the file is recorded through the symbol writer
(so code-id lookups and syminfo work) or, when it fails, deleted.

An object under the key whose metadata does not carry the declared md5 is an
older object the client has not replaced yet: the file stays pending."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import markus

from tecken_shared.breakpad import SymHeader
from tecken_shared.storage import ObjectInfo, StorageError
from tecken_symbols.db import DatabaseError
from tecken_symbols.storages import Backend
from tecken_symbols.upload import records
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.store import CHUNK, BodyCheck, FileResult, FileStorer
from tecken_symbols.upload.writer import SymbolWriter

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

#: Metadata of an object a client writes straight to the storage: the v2
#: upload that declared it (a lookup checks the database only for these).
UPLOAD_ID_META = "v2_upload_id"

COMPLETED = "completed"
PENDING = "pending"
FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    key: str
    status: str  # COMPLETED, PENDING or FAILED
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        return out


class DirectUploads:
    """Starts direct uploads and verifies what clients wrote."""

    def __init__(self, writer: SymbolWriter) -> None:
        self.writer = writer
        self.settings = writer.settings
        self.db = writer.db
        self._lock = threading.Lock()
        self._busy: dict[int, threading.Lock] = {}

    def protocol(self, storer: FileStorer) -> str:
        """The v2 protocol of uploads to ``storer``'s backend."""
        direct = storer.target.storage.direct_upload_protocol
        return direct if direct and self.settings.v2_protocol == "auto" else "tecken-put"

    def start(
        self, storer: FileStorer, protocol: str, upload_id: int, key: str, size: int, md5: str
    ) -> dict:
        """The ``upload`` action of one file: a URL of the storage's own."""
        compressed = storer.compresses(key)
        headers = storer.object_headers(key, size, md5, compressed)
        headers["metadata"][UPLOAD_ID_META] = str(upload_id)
        upload = storer.target.storage.direct_upload(
            storer.target.full_key(key),
            # A gzipped body's length is not known in advance.
            size=None if compressed else size,
            expires=self.settings.v2_url_expires,
            **headers,
        )
        # Downloads answer keys no upload recorded without asking storage
        # (tecken_symbols.stored_keys): this one may be written any moment now.
        self.writer.lookups.forget(key, stored=True)
        action: dict[str, Any] = {"type": "upload", "url": upload.url}
        if protocol != "gcs-resumable":  # Tecken's answer has only these three keys
            action.update(method="PUT", headers=upload.headers)
        action["content_encoding"] = "gzip" if compressed else None
        return action

    # -- verification ------------------------------------------------------

    def verify_upload(self, upload: dict[str, Any]) -> list[Verdict]:
        """Verify every pending file of a direct upload (completion call),
        ``SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS`` at a time."""
        rows = self._pending(upload_id=upload["id"])
        if len(rows) <= 1:
            return [self._verify_once(upload, row) for row in rows]
        with ThreadPoolExecutor(min(self.settings.workers, len(rows))) as pool:
            return list(pool.map(lambda row: self._verify_once(upload, row), rows))

    def on_found(self, key: str, backend: Backend, info: ObjectInfo) -> bool:
        """A lookup found ``key`` in ``backend`` (uncached): verify it first
        when it is a direct upload nobody verified yet. False when the
        object failed (it is deleted: the lookup found nothing). Only objects
        written by a direct upload (their metadata names it) cost a database
        query, so other downloads never wait on the database."""
        if UPLOAD_ID_META not in info.metadata:
            return True
        return self.settle(key, backend.label)

    def settle(self, key: str, label: str | None = None) -> bool:
        """Verify the pending direct uploads of ``key`` (to the backend
        ``label``, or any); False when one failed (its object is deleted).
        Never raises: a failure to verify leaves the file pending."""
        try:
            for row in self._pending(key=key):
                upload = records.get_upload(self.db, row["upload_id"])
                if upload is None:
                    continue
                written = self.writer.storages.upload_backend(bool(upload["try_symbols"]))
                if label is not None and written.label != label:
                    continue
                metrics.incr("upload_v2_verify_on_lookup")
                if self._verify_once(upload, row).status == FAILED:
                    return False
        except (DatabaseError, StorageError) as exc:
            logger.warning("cannot verify the v2 upload of %s on lookup: %s", key, exc)
        return True

    def _pending(self, **where: Any) -> list[dict[str, Any]]:
        return records.pending_direct_files(self.db, **where)

    def _verify_once(self, upload: dict[str, Any], row: dict[str, Any]) -> Verdict:
        """One verification of a row at a time in this process; a row done
        meanwhile by another thread is reported as it ended."""
        with self._lock:
            lock = self._busy.setdefault(row["id"], threading.Lock())
        try:
            with lock:
                current = records.get_file(self.db, row["id"])
                if current is None:
                    return Verdict(row["key"], FAILED, "failed its check (see the upload's error)")
                if current["completed_at"] is not None:
                    return Verdict(row["key"], COMPLETED)
                with metrics.timer("upload_v2_verify"):
                    verdict = self._verify(upload, row)
                metrics.incr("upload_v2_verified", tags=[f"status:{verdict.status}"])
                return verdict
        finally:
            with self._lock:
                self._busy.pop(row["id"], None)

    def _verify(self, upload: dict[str, Any], row: dict[str, Any]) -> Verdict:
        key = row["key"]
        try_symbols = bool(upload["try_symbols"])
        storer = self.writer.storer(try_symbols)
        storage = storer.target.storage
        full_key = storer.target.full_key(key)
        size, md5 = int(row["original_size"] or 0), row["md5_hash"]
        try:
            info = storage.metadata(full_key)
        except StorageError as exc:
            return Verdict(key, PENDING, f"storage not available ({exc})")
        if info is None:
            return Verdict(key, PENDING, "not uploaded yet")
        if info.metadata.get("original_md5_hash") != md5:
            return Verdict(key, PENDING, "not uploaded yet (an older object is in place)")
        try:
            header = self._check(storage, full_key, key, info, row, size, md5)
        except UploadError as exc:
            self.writer.reject(upload["id"], row["id"], key, try_symbols, str(exc))
            metrics.incr("upload_file_upload_error")
            return Verdict(key, FAILED, str(exc))
        except StorageError as exc:
            return Verdict(key, PENDING, f"storage not available ({exc})")
        result = FileResult(
            key=key,
            compressed=bool(row["compressed"]),
            original_size=size,
            md5=md5,
            stored_size=info.size,
            is_update=bool(row["is_update"]),
            header=header,
        )
        self.writer.complete(upload["id"], row["id"], result)
        return Verdict(key, COMPLETED)

    def _check(
        self,
        storage: Any,
        full_key: str,
        key: str,
        info: ObjectInfo,
        row: dict[str, Any],
        size: int,
        md5: str,
    ) -> SymHeader:
        """Raise UploadError unless the stored object is the declared file."""
        compressed = bool(row["compressed"])
        if info.size > self.settings.max_size:
            raise UploadError(f"{key}: {info.size} bytes stored, over the size limit")
        if compressed != (info.content_encoding == "gzip"):
            raise UploadError(f"{key}: stored with Content-Encoding {info.content_encoding!r}")
        is_sym = key.lower().endswith(".sym")
        if not compressed and info.md5 is not None and not is_sym:
            # The storage's own md5 of the stored (here: the original) bytes.
            if info.size != size or info.md5 != md5:
                raise UploadError(
                    f"{key}: the content does not match the declared size and md5 "
                    f"({info.size} bytes, md5 {info.md5}; declared {size}, {md5})"
                )
            return SymHeader()
        check = BodyCheck(self.settings, key, compressed=compressed, declared_size=size, md5=md5)
        with metrics.timer("upload_v2_verify_read"), storage.open(full_key) as stream:
            while chunk := stream.read(CHUNK):
                check.feed(chunk)
        return check.finish()
