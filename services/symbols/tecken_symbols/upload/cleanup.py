# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Retention of upload records (Tecken's ``clearuploads``), plus the stored
try objects that nothing newer still relies on.

    tecken-symbols-admin cleanup-uploads [--dry-run] [--keep-objects]
    python -m tecken_symbols.upload.cleanup [--dry-run] [--keep-objects]

* Try uploads older than ``SYMBOLS_UPLOAD_TRY_RETENTION_DAYS`` (30): their
  file-upload rows and upload rows are deleted, and so are the try objects
  they wrote, unless a newer try upload wrote or skipped the same key (a
  skipped key relies on the stored object). ``--keep-objects`` leaves storage
  alone (use it when a bucket lifecycle rule expires try objects).
* Regular upload records older than ``SYMBOLS_UPLOAD_REGULAR_RETENTION_DAYS``
  (730; 0 keeps them): records only, never the symbols.

Run it daily (cron, a scheduled job). Safe to run concurrently with uploads."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import markus

from tecken_shared.config import build_config_manager
from tecken_shared.storage import StorageError
from tecken_symbols.db import Database, from_json, utcnow
from tecken_symbols.upload.writer import SymbolWriter

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

BATCH = 500


@dataclass
class CleanupReport:
    try_uploads: int = 0
    try_files: int = 0
    regular_uploads: int = 0
    regular_files: int = 0
    objects_deleted: int = 0
    objects_kept: int = 0
    object_errors: int = 0
    abandoned_marked: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _count(db: Database, sql: str, params: Sequence[Any]) -> int:
    return int(db.fetchval(sql, params) or 0)


def cleanup_uploads(
    db: Database,
    *,
    try_days: int,
    regular_days: int,
    writer: SymbolWriter | None = None,
    dry_run: bool = False,
    abandoned_hours: float = 24,
) -> CleanupReport:
    """Delete expired records (and, through ``writer`` when given, the try
    objects, which every worker's lookup cache then forgets: no cached hit
    redirects to a deleted object), and mark uploads still incomplete after
    ``abandoned_hours`` as failed (their process died, or a v2 client never
    sent its files)."""
    report = CleanupReport()
    now = utcnow()
    abandoned_cutoff = now - timedelta(hours=abandoned_hours)
    report.abandoned_marked = _count(
        db,
        "SELECT COUNT(*) FROM uploads WHERE completed_at IS NULL AND error IS NULL AND created_at < ?",
        (abandoned_cutoff,),
    )
    if report.abandoned_marked and not dry_run:
        db.execute(
            "UPDATE uploads SET error = ? WHERE completed_at IS NULL AND error IS NULL AND created_at < ?",
            (
                f"abandoned: not completed within {abandoned_hours:g} hours (the process handling it "
                "stopped, or a v2 client never sent its files); retry the upload",
                abandoned_cutoff,
            ),
        )
    try_cutoff = now - timedelta(days=try_days)
    with metrics.timer("clearuploads.count_timing"):
        report.try_uploads = _count(
            db,
            "SELECT COUNT(*) FROM uploads WHERE try_symbols = ? AND created_at < ?",
            (True, try_cutoff),
        )
        report.try_files = _count(
            db,
            "SELECT COUNT(*) FROM file_uploads WHERE try_symbols = ? AND created_at < ?",
            (True, try_cutoff),
        )
        if regular_days > 0:
            regular_cutoff = now - timedelta(days=regular_days)
            report.regular_uploads = _count(
                db,
                "SELECT COUNT(*) FROM uploads WHERE try_symbols = ? AND created_at < ?",
                (False, regular_cutoff),
            )
            report.regular_files = _count(
                db,
                "SELECT COUNT(*) FROM file_uploads WHERE try_symbols = ? AND created_at < ?",
                (False, regular_cutoff),
            )
    for table, count in (("uploads", report.try_uploads), ("file_uploads", report.try_files)):
        metrics.gauge("clearuploads.record_count", count, tags=["storage:try", f"table:{table}"])

    if writer is not None:
        old_keys = {
            r["key"]
            for r in db.fetchall(
                "SELECT DISTINCT key FROM file_uploads WHERE try_symbols = ? AND created_at < ?",
                (True, try_cutoff),
            )
        }
        if old_keys:
            keep = {
                r["key"]
                for r in db.fetchall(
                    "SELECT DISTINCT key FROM file_uploads WHERE try_symbols = ? AND created_at >= ?",
                    (True, try_cutoff),
                )
            }
            for r in db.fetchall(
                "SELECT skipped_keys FROM uploads WHERE try_symbols = ? AND created_at >= ? "
                "AND skipped_keys IS NOT NULL",
                (True, try_cutoff),
            ):
                keep.update(from_json(r["skipped_keys"], []))
            for key in sorted(old_keys):
                if key in keep:
                    report.objects_kept += 1
                    continue
                if dry_run:
                    report.objects_deleted += 1
                    continue
                try:
                    if writer.delete(key, try_symbols=True):
                        report.objects_deleted += 1
                except StorageError as exc:
                    report.object_errors += 1
                    logger.warning("cannot delete try object %s: %s", key, exc)

    if dry_run:
        return report
    with metrics.timer("clearuploads.delete_timing"):
        with db.transaction() as tx:
            tx.execute(
                "DELETE FROM file_uploads WHERE try_symbols = ? AND created_at < ?",
                (True, try_cutoff),
            )
            tx.execute(
                "DELETE FROM file_uploads WHERE upload_id IN "
                "(SELECT id FROM uploads WHERE try_symbols = ? AND created_at < ?)",
                (True, try_cutoff),
            )
            tx.execute(
                "DELETE FROM uploads WHERE try_symbols = ? AND created_at < ?", (True, try_cutoff)
            )
            if regular_days > 0:
                tx.execute(
                    "DELETE FROM file_uploads WHERE try_symbols = ? AND created_at < ?",
                    (False, regular_cutoff),
                )
                tx.execute(
                    "DELETE FROM uploads WHERE try_symbols = ? AND created_at < ?",
                    (False, regular_cutoff),
                )
    metrics.gauge(
        "clearuploads.records_deleted", report.try_uploads, tags=["storage:try", "table:uploads"]
    )
    metrics.gauge(
        "clearuploads.records_deleted", report.try_files, tags=["storage:try", "table:file_uploads"]
    )
    metrics.gauge(
        "clearuploads.records_deleted",
        report.regular_uploads,
        tags=["storage:regular", "table:uploads"],
    )
    metrics.gauge(
        "clearuploads.records_deleted",
        report.regular_files,
        tags=["storage:regular", "table:file_uploads"],
    )
    return report


def remove_orphaned_files(directory: str, max_age_seconds: float) -> int:
    """Delete temporary upload files older than ``max_age_seconds`` (left by
    killed workers); returns how many were deleted."""
    import time

    deleted = 0
    cutoff = time.time() - max_age_seconds
    with metrics.timer("remove_orphaned_files.timing"):
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    deleted += 1
                    metrics.incr("remove_orphaned_files.delete_file")
            except FileNotFoundError:
                continue
            except OSError as exc:
                metrics.incr("remove_orphaned_files.delete_file_error")
                logger.warning("cannot delete orphaned %s: %s", entry.path, exc)
    return deleted


def remove_stale_storage_temp_files(root: str, max_age_seconds: float) -> int:
    """Delete the filesystem storage's temporary dot-files (``.<name>.*.tmp``,
    left when a worker is killed mid-write) older than ``max_age_seconds``;
    returns how many were deleted (RT-22). Objects are never touched."""
    import time

    deleted = 0
    cutoff = time.time() - max_age_seconds
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            path = os.path.join(dirpath, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    deleted += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("cannot delete stale temporary file %s: %s", path, exc)
    if deleted:
        metrics.incr("remove_orphaned_files.delete_file", deleted)
    return deleted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    parser.add_argument(
        "--keep-objects",
        action="store_true",
        help="delete records only; leave try objects to a bucket lifecycle rule",
    )
    parser.add_argument(
        "--orphan-minutes",
        type=float,
        default=15,
        help="delete temporary upload files older than this (left by killed workers)",
    )
    parser.add_argument("--try-days", type=int, help="override SYMBOLS_UPLOAD_TRY_RETENTION_DAYS")
    parser.add_argument(
        "--regular-days", type=int, help="override SYMBOLS_UPLOAD_REGULAR_RETENTION_DAYS (0 keeps)"
    )


def run(args: argparse.Namespace) -> int:
    import json

    from tecken_shared.storage import storage_from_url
    from tecken_shared.storage.filesystem import FilesystemStorage
    from tecken_symbols.context import build_context
    from tecken_symbols.missing import prune as prune_missing
    from tecken_symbols.settings import NAMESPACE, DatabaseConfig, DownloadConfig, StorageConfig
    from tecken_symbols.upload.config import UploadSettings

    database_url = getattr(args, "database_url", None)
    if database_url:
        manager = build_config_manager({**os.environ, "SYMBOLS_DATABASE_URL": database_url})
    else:
        manager = build_config_manager()
    settings = UploadSettings.from_config(manager)
    db_cfg = manager.with_namespace(NAMESPACE).with_options(DatabaseConfig)
    storage_cfg = manager.with_namespace(NAMESPACE).with_options(StorageConfig)
    db = Database(db_cfg("database_url"))
    db.migrate()
    writer = ctx = None
    if not args.keep_objects:
        # The service's symbol writer deletes the try objects: every worker's
        # lookup cache forgets them (the invalidation log, and Redis if used).
        ctx = build_context(manager)
        writer = ctx.writer
    report = cleanup_uploads(
        db,
        try_days=args.try_days if args.try_days is not None else settings.try_retention_days,
        regular_days=args.regular_days
        if args.regular_days is not None
        else settings.regular_retention_days,
        writer=writer,
        dry_run=args.dry_run,
    )
    if ctx is not None:
        ctx.close()
    orphans = (
        0 if args.dry_run else remove_orphaned_files(settings.temp_root, args.orphan_minutes * 60)
    )
    if not args.dry_run:
        for url in (storage_cfg("storage_url"), storage_cfg("try_storage_url")):
            storage = storage_from_url(url)
            if isinstance(storage, FilesystemStorage):
                orphans += remove_stale_storage_temp_files(
                    str(storage.root), args.orphan_minutes * 60
                )
    dl_cfg = manager.with_namespace(NAMESPACE).with_options(DownloadConfig)
    missing_pruned = (
        0 if args.dry_run else prune_missing(db, dl_cfg("missing_symbols_retention_days"))
    )
    print(
        json.dumps(
            {
                "dry_run": args.dry_run,
                "orphaned_files_deleted": orphans,
                "missing_symbols_deleted": missing_pruned,
                **report.as_dict(),
            },
            sort_keys=True,
        )
    )
    return 1 if report.object_errors else 0


def add_cleanup_command(subparsers: Any) -> None:
    """Register ``cleanup-uploads`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "cleanup-uploads", help="delete expired try uploads and old upload records"
    )
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tecken_symbols.upload.cleanup",
        description="Delete expired try uploads (records and try objects) and old upload records.",
    )
    parser.add_argument("--database-url", help="default: SYMBOLS_DATABASE_URL")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
