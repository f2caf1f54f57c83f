# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload and file-upload records (plain SQL over :mod:`tecken_symbols.db`).

An Upload row is created before anything is stored; a FileUpload row is saved
as each file lands (not at the end), so a failure partway loses no record of
what was stored; ``completed_at`` is set only when every file made it, and
``error`` says why when not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tecken_symbols.db import Cursorish, Database, from_json, to_json, utcnow
from tecken_symbols.storages import bucket_of
from tecken_symbols.upload.store import FileResult

UPLOAD_COLUMNS = (
    "u.id, u.user_id, u.filename, u.bucket_name, u.size, u.skipped_keys, u.ignored_keys, "
    "u.try_symbols, u.content_hash, u.download_url, u.redirect_urls, u.created_at, "
    "u.completed_at, u.error, u.upload_protocol"
)
FILE_COLUMNS = (
    "f.id, f.upload_id, f.bucket_name, f.key, f.is_update, f.compressed, f.size, "
    "f.try_symbols, f.created_at, f.completed_at, f.debug_filename, f.debug_id, f.code_file, "
    "f.code_id, f.generator, f.original_size, f.md5_hash"
)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 with milliseconds and a Z (Tecken's format)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def create_upload(
    db: Database,
    *,
    user_id: int,
    filename: str,
    bucket_name: str,
    size: int,
    try_symbols: bool,
    content_hash: str | None = None,
    download_url: str | None = None,
    redirect_urls: Sequence[str] | None = None,
    upload_protocol: str | None = None,
    skipped_keys: Sequence[str] | None = None,
) -> int:
    return db.insert(
        "INSERT INTO uploads (user_id, filename, bucket_name, size, try_symbols, content_hash, "
        "download_url, redirect_urls, upload_protocol, skipped_keys, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            user_id,
            filename[:100],
            bucket_name,
            size,
            try_symbols,
            content_hash,
            download_url,
            to_json(list(redirect_urls or [])),
            upload_protocol,
            to_json(list(skipped_keys or [])),
            utcnow(),
        ),
    )


def add_file_upload(
    db: Database | Cursorish,
    upload_id: int | None,
    bucket_name: str,
    result: FileResult,
    try_symbols: bool,
    *,
    completed: bool = True,
) -> int:
    now = utcnow()
    h = result.header
    return db.insert(
        "INSERT INTO file_uploads (upload_id, bucket_name, key, is_update, compressed, size, "
        "try_symbols, created_at, completed_at, debug_filename, debug_id, code_file, code_id, "
        "generator, original_size, md5_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            upload_id,
            bucket_name,
            result.key,
            result.is_update,
            result.compressed,
            result.stored_size,
            try_symbols,
            now,
            now if completed else None,
            h.debug_filename,
            h.debug_id,
            h.code_file,
            h.code_id,
            h.generator,
            result.original_size,
            result.md5,
        ),
    )


def complete_file_upload(db: Database | Cursorish, file_id: int, result: FileResult) -> None:
    h = result.header
    db.execute(
        "UPDATE file_uploads SET completed_at = ?, size = ?, is_update = ?, debug_filename = ?, "
        "debug_id = ?, code_file = ?, code_id = ?, generator = ? WHERE id = ?",
        (
            utcnow(),
            result.stored_size,
            result.is_update,
            h.debug_filename,
            h.debug_id,
            h.code_file,
            h.code_id,
            h.generator,
            file_id,
        ),
    )


def finish_upload(
    db: Database,
    upload_id: int,
    *,
    skipped_keys: Sequence[str] = (),
    ignored_keys: Sequence[str] = (),
    error: str | None = None,
) -> None:
    """Record the outcome: completed_at when ``error`` is None, else the error."""
    db.execute(
        "UPDATE uploads SET skipped_keys = ?, ignored_keys = ?, completed_at = ?, error = ? "
        "WHERE id = ?",
        (
            to_json(list(skipped_keys)),
            to_json(list(ignored_keys)),
            None if error else utcnow(),
            error,
            upload_id,
        ),
    )


def mark_completed_if_done(db: Database, upload_id: int) -> bool:
    """v2: complete the upload once none of its files is incomplete and none
    failed (a failed file leaves its reason in ``error``)."""
    left = db.fetchval(
        "SELECT COUNT(*) FROM file_uploads WHERE upload_id = ? AND completed_at IS NULL",
        (upload_id,),
    )
    if left:
        return False
    return bool(
        db.execute(
            "UPDATE uploads SET completed_at = ? WHERE id = ? AND completed_at IS NULL "
            "AND error IS NULL",
            (utcnow(), upload_id),
        )
    ) or bool(db.fetchval("SELECT completed_at FROM uploads WHERE id = ?", (upload_id,)))


def fail_file_upload(tx: Cursorish, upload_id: int, file_id: int, reason: str) -> None:
    """v2: a declared file whose object failed its check: the row goes (the
    object is deleted), the reason is added to the upload's ``error``."""
    tx.execute("DELETE FROM file_uploads WHERE id = ?", (file_id,))
    error = tx.fetchval("SELECT error FROM uploads WHERE id = ?", (upload_id,))
    tx.execute(
        "UPDATE uploads SET error = ? WHERE id = ?",
        ((f"{error}; " if error else "") + reason, upload_id),
    )


#: v2 protocols whose clients write the storage themselves.
DIRECT_PROTOCOLS = ("gcs-resumable", "s3-presigned-put")


def pending_direct_files(
    db: Database, *, upload_id: int | None = None, key: str | None = None
) -> list[dict[str, Any]]:
    """Declared, not yet verified files of direct (storage) v2 uploads: of
    one upload, or under one key (each row with its upload's ``created_at``)."""
    cond, arg = ("f.upload_id = ?", upload_id) if key is None else ("f.key = ?", key)
    return db.fetchall(
        f"SELECT {FILE_COLUMNS}, u.upload_protocol FROM file_uploads f "
        f"JOIN uploads u ON u.id = f.upload_id WHERE {cond} AND f.completed_at IS NULL "
        "AND u.upload_protocol IN (?, ?) ORDER BY f.id",
        (arg, *DIRECT_PROTOCOLS),
    )


def get_upload(db: Database, upload_id: int) -> dict[str, Any] | None:
    return db.fetchone(
        f"SELECT {UPLOAD_COLUMNS}, us.email AS user_email FROM uploads u "
        "JOIN users us ON us.id = u.user_id WHERE u.id = ?",
        (upload_id,),
    )


def get_file(db: Database, file_id: int) -> dict[str, Any] | None:
    return db.fetchone(f"SELECT {FILE_COLUMNS} FROM file_uploads f WHERE f.id = ?", (file_id,))


def files_of(db: Database, upload_id: int) -> list[dict[str, Any]]:
    return db.fetchall(
        f"SELECT {FILE_COLUMNS} FROM file_uploads f WHERE f.upload_id = ? ORDER BY f.id",
        (upload_id,),
    )


def pending_file(db: Database, upload_id: int, key: str) -> dict[str, Any] | None:
    return db.fetchone(
        f"SELECT {FILE_COLUMNS} FROM file_uploads f WHERE f.upload_id = ? AND f.key = ? "
        "ORDER BY f.id DESC LIMIT 1",
        (upload_id, key),
    )


def upload_response(row: dict[str, Any]) -> dict[str, Any]:
    """The 201 answer's ``upload`` object (spec 2.2 step 9)."""
    return {
        "id": row["id"],
        "size": row["size"],
        "filename": row["filename"],
        "bucket": shown_bucket(row["bucket_name"]),
        "download_url": row["download_url"],
        "try_symbols": bool(row["try_symbols"]),
        "redirect_urls": from_json(row["redirect_urls"], []),
        "completed_at": iso(row["completed_at"]),
        "created_at": iso(row["created_at"]),
        "user": row["user_email"],
        "skipped_keys": from_json(row["skipped_keys"], []),
    }


def shown_bucket(name: str | None) -> str | None:
    """A recorded bucket name as answers show it, Tecken's bare bucket name:
    rows written when bucket names held a storage URL show the bucket alone
    (``s3://bucket/v1/`` → ``bucket``), and a local path ``filesystem``
    (RT-18)."""
    if name and "://" in name:
        return bucket_of(name) or "filesystem"
    return name
