# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Processing one v1 upload (a zip posted or fetched by URL): validate (each
member read once: checked, hashed and gzipped, see
:func:`~tecken_symbols.upload.store.stage_archive`), record, store and record
each file as it lands through the symbol writer, finish the record."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import markus

from tecken_symbols.context import AppContext
from tecken_symbols.db import DatabaseError
from tecken_symbols.upload import records
from tecken_symbols.upload.archive import Archive, read_archive
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.store import FileResult, FileStorer, stage_archive, store_archive
from tecken_symbols.upload.validate import checker_for

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")


class Uploader:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.upload
        self.writer = ctx.writer

    def process_archive(
        self,
        *,
        user_id: int,
        path: str,
        size: int,
        filename: str,
        try_symbols: bool,
        download_url: str | None = None,
        redirect_urls: list[str] | None = None,
    ) -> dict[str, Any]:
        """Validate and store the zip at ``path``; returns the finished upload
        row. Raises UploadError (4xx for bad input, 503 for storage faults)."""
        settings = self.settings
        with metrics.timer("upload_dump_and_extract"):
            archive = read_archive(path, size, settings)
        storer = self.writer.storer(try_symbols)
        # With the content check: every member read once (checked, hashed and
        # gzipped), nothing written unless all pass (a 400 otherwise).
        staged = stage_archive(archive, storer, checker_for) if settings.validate_content else None
        try:
            return self._store(
                staged if staged is not None else store_archive(archive, storer),
                archive,
                storer,
                user_id=user_id,
                size=size,
                filename=filename,
                try_symbols=try_symbols,
                download_url=download_url,
                redirect_urls=redirect_urls,
            )
        finally:
            if staged is not None:
                staged.close()

    def _store(
        self,
        results: Iterable[FileResult],
        archive: Archive,
        storer: FileStorer,
        *,
        user_id: int,
        size: int,
        filename: str,
        try_symbols: bool,
        download_url: str | None,
        redirect_urls: list[str] | None,
    ) -> dict[str, Any]:
        db = self.ctx.db
        try:
            upload_id = records.create_upload(
                db,
                user_id=user_id,
                filename=filename,
                bucket_name=storer.target.bucket_name,
                size=size,
                try_symbols=try_symbols,
                content_hash=archive.content_hash,
                download_url=download_url,
                redirect_urls=redirect_urls,
                upload_protocol="zip-url" if download_url else "zip",
            )
        except DatabaseError as exc:
            logger.error("cannot record upload: %s", exc)
            raise UploadError(f"The database is not available ({exc}); retry later", 503) from exc

        skipped: list[str] = []
        errors: list[FileResult] = []
        db_error: str | None = None
        for result in results:
            if result.error:
                errors.append(result)
                continue
            if result.skipped:
                skipped.append(result.key)
                metrics.incr("upload_file_upload_skip")
                continue
            try:
                self.writer.record(upload_id, storer.target.bucket_name, result, try_symbols)
            except DatabaseError as exc:  # stored but not recorded: say so, keep going
                self.writer.forget_unrecorded(result)
                db_error = db_error or str(exc)
                logger.error("cannot record file %s of upload %s: %s", result.key, upload_id, exc)

        error = None
        bad = [r for r in errors if r.bad_input]
        if bad:
            error = (
                f"The archive is damaged: {bad[0].error}. {len(archive.to_store) - len(errors)} "
                "files were stored and recorded; rebuild the archive and upload it again."
            )
        elif errors:
            first = errors[0]
            error = (
                f"Storing {len(errors)} of {len(archive.to_store)} files failed; first: "
                f"{first.key}: {first.error}. The files stored are recorded; retry the upload."
            )
        elif db_error:
            error = f"Files were stored but not all recorded ({db_error}); retry the upload."
        try:
            records.finish_upload(
                db, upload_id, skipped_keys=skipped, ignored_keys=archive.ignored_keys, error=error
            )
            row = records.get_upload(db, upload_id)
        except DatabaseError as exc:
            raise UploadError(f"The database is not available ({exc}); retry later", 503) from exc
        if error:
            logger.warning("upload %s failed: %s", upload_id, error)
            raise UploadError(error, 400 if bad else 503)
        metrics.incr(
            "upload_uploads",
            tags=[f"try:{str(try_symbols).lower()}", f"bucket:{storer.target.bucket_name}"],
        )
        assert row is not None
        return row

    def cleanup_file(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
