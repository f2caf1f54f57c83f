# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The symbol writer: the one component through which every symbol object is
written or deleted (v1 archives, upload by URL, v2 PUTs, ``cleanup-uploads``).

It owns the three duties of a write, so no caller can forget one:

1. the object, with the stored-object convention (:class:`FileStorer`);
2. the FileUpload row (:mod:`tecken_symbols.upload.records`), the
   object's rows of the identity index (:mod:`tecken_symbols.identities`)
   and the stored key (:mod:`tecken_symbols.stored_keys`, what downloads of
   keys never stored are answered from), in one transaction;
3. the lookup caches: right after an object write or delete its existence
   answers are dropped here and in a shared cache, and the keys (existence,
   for a .sym the syminfo pairs of its header, and the identity index answers
   it changed) are appended to the
   invalidation log in the transaction that records the row, for every other
   worker (:mod:`tecken_symbols.invalidations`)."""

from __future__ import annotations

import logging

from tecken_symbols import identities, stored_keys
from tecken_symbols.db import Cursorish, Database, DatabaseError
from tecken_symbols.lookups import Lookups
from tecken_symbols.storages import Backend, Storages
from tecken_symbols.upload import records
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.store import FileResult, FileStorer, Target

logger = logging.getLogger(__name__)


def target_of(backend: Backend) -> Target:
    return Target(backend.storage, "", backend.name)


class SymbolWriter:
    def __init__(
        self, settings: UploadSettings, storages: Storages, db: Database, lookups: Lookups
    ) -> None:
        self.settings = settings
        self.storages = storages
        self.db = db
        self.lookups = lookups

    def storer(self, try_symbols: bool) -> FileStorer:
        """Writes to the try or regular backend. A try upload skips what regular
        storage already holds (downloads of try symbols search it first)."""
        regular = target_of(self.storages.regular)
        target = target_of(self.storages.upload_backend(try_symbols))
        lookups = [regular, target] if try_symbols else [regular]
        return FileStorer(self.settings, target, lookups, on_written=self._written)

    def _written(self, key: str) -> None:
        # This process and a shared cache at once; other workers through the
        # log, appended with the row (record/complete) or by delete().
        self.lookups.drop(self.lookups.cache_keys(key))

    def record(
        self, upload_id: int | None, bucket_name: str, result: FileResult, try_symbols: bool
    ) -> None:
        """The FileUpload row of a stored file, with its invalidations.
        Raises DatabaseError (the object is stored but not recorded)."""
        keys = self.lookups.cache_keys(result.key, result.header)
        with self.db.transaction() as tx:
            records.add_file_upload(tx, upload_id, bucket_name, result, try_symbols)
            keys += self._index(tx, result, try_symbols)
            stored_keys.add(tx, [result.key])
            self.lookups.log_forget(tx, keys)
        self.lookups.drop(keys)

    def complete(self, upload_id: int, file_id: int, result: FileResult) -> bool:
        """v2: complete the declared row ``file_id`` of a stored file, with its
        invalidations; True when that completed the upload."""
        keys = self.lookups.cache_keys(result.key, result.header)
        with self.db.transaction() as tx:
            records.complete_file_upload(tx, file_id, result)
            row = tx.fetchone("SELECT try_symbols FROM file_uploads WHERE id = ?", (file_id,))
            keys += self._index(tx, result, bool(row and row["try_symbols"]))
            stored_keys.add(tx, [result.key])
            self.lookups.log_forget(tx, keys)
        self.lookups.drop(keys)
        # After the commit: concurrent PUTs of the last files must see each
        # other's rows completed.
        return records.mark_completed_if_done(self.db, upload_id)

    def _index(self, tx: Cursorish, result: FileResult, try_symbols: bool) -> list[str]:
        """Record the identities of a stored file; the cache keys made stale."""
        if result.identities is None:
            return []
        changed = identities.record(tx, result.key, try_symbols, result.md5, result.identities)
        return [self.lookups.identity_cache_key(k) for k in changed]

    def record_identities(
        self, key: str, try_symbols: bool, md5: str | None, found: list[identities.Identity]
    ) -> int:
        """Backfill: replace the identity rows of an object stored earlier
        (and record its key as stored, :mod:`tecken_symbols.stored_keys`: it
        may predate the records); how many lookup keys changed."""
        with self.db.transaction() as tx:
            changed = identities.record(tx, key, try_symbols, md5, found)
            stored_keys.add(tx, [key])
            keys = [self.lookups.identity_cache_key(k) for k in changed]
            keys += self.lookups.cache_keys(key)
            self.lookups.log_forget(tx, keys)
        self.lookups.drop(keys)
        return len(changed)

    def put_derived(self, key: str, data: bytes) -> None:
        """Write a derived object (an expanded CAB, gunzipped or untarred
        file; :func:`tecken_symbols.identities.derived_key`) to regular
        storage and forget any cached miss of it. Raises StorageError."""
        self.storages.regular.storage.put(
            key, data, content_type="application/octet-stream", metadata={}
        )
        self.lookups.forget(key, stored=True)

    def reject(
        self, upload_id: int, file_id: int, key: str, try_symbols: bool, reason: str
    ) -> None:
        """v2: an object a client wrote straight to the storage failed its
        check: delete it (every worker forgets it), drop its declared row and
        record ``reason`` on the upload. Raises StorageError, DatabaseError."""
        self.delete(key, try_symbols=try_symbols)
        with self.db.transaction() as tx:
            records.fail_file_upload(tx, upload_id, file_id, reason)

    def delete(self, key: str, *, try_symbols: bool) -> bool:
        """Delete an object from the try or regular backend and forget it in
        every worker (its identity rows too). Raises StorageError; False when
        there was no object."""
        deleted = self.storer(try_symbols).delete(key)
        try:
            self.record_identities(key, try_symbols, None, [])
        except DatabaseError as exc:  # the rows then point at nothing: a 404 later
            logger.error("cannot drop the identity rows of %s: %s", key, exc)
        self.lookups.forget(key)
        return deleted

    def forget_unrecorded(self, result: FileResult) -> None:
        """A stored file whose row could not be saved: forget it anyway (the
        log append may fail too; the other workers then stop trusting memory)."""
        self.lookups.forget(result.key, result.header, stored=True)

    def import_keys(self, backend: Backend, batch: int = 1000) -> int:
        """Record the key of every object ``backend`` holds (objects the
        service never recorded: a migrated bucket, extra read-only storage),
        and make every worker know them within the log's poll interval.
        Returns how many objects were listed. Raises StorageError or
        DatabaseError (what was imported before stays imported)."""
        listed = 0
        keys: list[str] = []

        def flush() -> None:
            cache_keys = [c for key in keys for c in self.lookups.cache_keys(key)]
            with self.db.transaction() as tx:
                stored_keys.add(tx, keys)
                self.lookups.log_forget(tx, cache_keys)
            self.lookups.drop(cache_keys)
            keys.clear()

        for info in backend.storage.list():
            keys.append(info.key)
            listed += 1
            if len(keys) >= batch:
                flush()
        if keys:
            flush()
        return listed
