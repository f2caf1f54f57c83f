# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The JSON API of the web UI for upload history (spec section 4):
``/api/uploads/``, ``/api/uploads/upload/{id}``, ``/api/uploads/files/``,
``/api/uploads/files/file/{id}``, ``/api/stats/`` and
``POST /upload/auth_info/``.

Authentication is by ``Auth-Token`` (any valid token). Users see their own
uploads unless their token carries ``view_all_uploads``; the files list needs
``view_all_uploads``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import falcon
import markus

from tecken_symbols.accounts import UPLOAD_PERMISSIONS, UPLOAD_TRY_SYMBOLS, VIEW_ALL_UPLOADS
from tecken_symbols.auth import Principal, authenticate
from tecken_symbols.context import AppContext
from tecken_symbols.db import from_json
from tecken_symbols.upload.errors import UploadError, answer_error
from tecken_symbols.upload.filters import (
    BIGINT_MAX,
    date_conditions,
    page_number,
    single_params,
    size_conditions,
    text_conditions,
)
from tecken_symbols.upload.records import FILE_COLUMNS, UPLOAD_COLUMNS, iso, shown_bucket

metrics = markus.get_metrics("tecken")

UPLOADS_BATCH = 20
FILES_BATCH = 40


def _upload_json(row: dict[str, Any], *, with_user_id: bool = False) -> dict[str, Any]:
    user = {"email": row["user_email"]}
    if with_user_id:
        user = {"id": row["user_id"], "email": row["user_email"]}
    result = {
        "id": row["id"],
        "user": user,
        "filename": row["filename"],
        "size": row["size"],
        "bucket_name": shown_bucket(row["bucket_name"]),
        "skipped_keys": from_json(row["skipped_keys"], []),
        "ignored_keys": from_json(row["ignored_keys"], []),
        "try_symbols": bool(row["try_symbols"]),
        "download_url": row["download_url"],
        "redirect_urls": from_json(row["redirect_urls"], []),
        "completed_at": iso(row["completed_at"]),
        "created_at": iso(row["created_at"]),
        "content_hash": row["content_hash"],
        "upload_protocol": row.get("upload_protocol"),
        "error": row.get("error"),
    }
    return result


def _file_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "key": row["key"],
        "update": bool(row["is_update"]),
        "compressed": bool(row["compressed"]),
        "size": row["size"],
        "bucket_name": shown_bucket(row["bucket_name"]),
        "completed_at": iso(row["completed_at"]),
        "created_at": iso(row["created_at"]),
    }


class ApiResource:
    endpoint = ""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def auth(self, req: falcon.Request, resp: falcon.Response) -> Principal:
        return authenticate(req, resp, self.ctx.db)

    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        with metrics.timer("api", tags=[f"endpoint:{self.endpoint}"]):
            principal = self.auth(req, resp)
            try:
                resp.media = self.get(req, principal, **params)
            except UploadError as exc:
                answer_error(resp, exc)

    def get(self, req: falcon.Request, principal: Principal, **params: Any) -> dict[str, Any]:
        raise NotImplementedError


class UploadsResource(ApiResource):
    endpoint = "uploads"

    def get(self, req: falcon.Request, principal: Principal, **params: Any) -> dict[str, Any]:
        can_view_all = principal.has_perm(VIEW_ALL_UPLOADS)
        conds: list[str] = []
        args: list[Any] = []
        filtered = False
        if not can_view_all:
            conds.append("u.user_id = ?")
            args.append(principal.user_id)
        q = single_params(req)
        if q.get("user"):
            c, a = text_conditions("us.email", q["user"])
            conds += c
            args += a
            filtered = True
        if q.get("size"):
            c, a = size_conditions("u.size", q["size"])
            conds += c
            args += a
            filtered = True
        for field in ("created_at", "completed_at"):
            if q.get(field):
                c, a = date_conditions(f"u.{field}", q[field])
                conds += c
                args += a
                filtered = True
        sort = q.get("sort") or "created_at"
        if sort not in ("created_at", "size"):
            raise UploadError(f"Invalid sort {sort!r} (size or created_at)")
        reverse = (q.get("reverse") or "true").lower() in ("true", "1", "yes")
        page = page_number(q.get("page"))
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        base = f"FROM uploads u JOIN users us ON us.id = u.user_id{where}"
        db = self.ctx.db
        total = db.fetchval(f"SELECT COUNT(*) {base}", args)
        rows = db.fetchall(
            f"SELECT {UPLOAD_COLUMNS}, us.email AS user_email, "
            "(SELECT COUNT(*) FROM file_uploads f WHERE f.upload_id = u.id) AS files_count, "
            "(SELECT COUNT(*) FROM file_uploads f WHERE f.upload_id = u.id AND f.completed_at IS NULL) "
            f"AS files_incomplete_count {base} ORDER BY u.{sort} {'DESC' if reverse else 'ASC'}, "
            f"u.id {'DESC' if reverse else 'ASC'} LIMIT ? OFFSET ?",
            [*args, UPLOADS_BATCH + 1, (page - 1) * UPLOADS_BATCH],
        )
        uploads = []
        for row in rows[:UPLOADS_BATCH]:
            item = _upload_json(row)
            item["files_count"] = int(row["files_count"])
            item["files_incomplete_count"] = int(row["files_incomplete_count"])
            uploads.append(item)
        return {
            "uploads": uploads,
            "can_view_all": can_view_all,
            "batch_size": UPLOADS_BATCH,
            "order_by": {"sort": sort, "reverse": reverse},
            "has_next": len(rows) > UPLOADS_BATCH,
            "total": int(total or 0),
            "filtered": filtered,
        }


class UploadResource(ApiResource):
    endpoint = "upload"

    def get(self, req: falcon.Request, principal: Principal, **params: Any) -> dict[str, Any]:
        db = self.ctx.db
        row = db.fetchone(
            f"SELECT {UPLOAD_COLUMNS}, us.email AS user_email FROM uploads u "
            "JOIN users us ON us.id = u.user_id WHERE u.id = ?",
            (params["upload_id"],),
        )
        if row is None:
            raise UploadError("Upload not found", 404)
        if row["user_id"] != principal.user_id and not principal.has_perm(VIEW_ALL_UPLOADS):
            raise UploadError("Insufficient access to view this upload", 403)
        upload = _upload_json(row, with_user_id=True)
        files = db.fetchall(
            f"SELECT {FILE_COLUMNS} FROM file_uploads f WHERE f.upload_id = ? ORDER BY f.id",
            (row["id"],),
        )
        upload["file_uploads"] = [_file_json(f) for f in files]
        if row["content_hash"]:
            related = db.fetchall(
                f"SELECT {UPLOAD_COLUMNS}, us.email AS user_email FROM uploads u "
                "JOIN users us ON us.id = u.user_id WHERE u.user_id = ? AND u.size = ? "
                "AND u.content_hash = ? AND u.id != ? ORDER BY u.created_at DESC LIMIT 20",
                (row["user_id"], row["size"], row["content_hash"], row["id"]),
            )
        else:
            related = db.fetchall(
                f"SELECT {UPLOAD_COLUMNS}, us.email AS user_email FROM uploads u "
                "JOIN users us ON us.id = u.user_id WHERE u.user_id = ? AND u.filename = ? "
                "AND u.filename != '' AND u.id != ? ORDER BY u.created_at DESC LIMIT 20",
                (row["user_id"], row["filename"], row["id"]),
            )
        upload["related"] = [_upload_json(r, with_user_id=True) for r in related]
        return {"upload": upload}


def _file_upload_json(row: dict[str, Any]) -> dict[str, Any] | None:
    if row.get("u_id") is None:
        return None
    return {
        "id": row["u_id"],
        "upload_type": "try" if row["u_try"] else "regular",
        "try_symbols": bool(row["u_try"]),
        "user": {"id": row["u_user_id"], "email": row["u_email"]},
        "created_at": iso(row["u_created_at"]),
    }


FILE_JOIN = (
    "FROM file_uploads f LEFT JOIN uploads u ON u.id = f.upload_id "
    "LEFT JOIN users us ON us.id = u.user_id"
)
FILE_UPLOAD_COLUMNS = (
    "u.id AS u_id, u.try_symbols AS u_try, u.user_id AS u_user_id, us.email AS u_email, "
    "u.created_at AS u_created_at"
)


class FilesResource(ApiResource):
    endpoint = "upload_files"

    def get(self, req: falcon.Request, principal: Principal, **params: Any) -> dict[str, Any]:
        if not principal.has_perm(VIEW_ALL_UPLOADS):
            raise UploadError("Forbidden", 403)
        q = single_params(req)
        conds: list[str] = []
        args: list[Any] = []
        for term in (q.get("key") or "").split(","):
            if term.strip():
                conds.append("LOWER(f.key) LIKE ?")
                args.append(f"%{term.strip().lower()}%")
        if q.get("size"):
            c, a = size_conditions("f.size", q["size"])
            conds += c
            args += a
        for field in ("created_at", "completed_at"):
            if q.get(field):
                c, a = date_conditions(f"f.{field}", q[field])
                conds += c
                args += a
        if q.get("bucket_name"):
            value = q["bucket_name"]
            if value.startswith("!"):
                conds.append("f.bucket_name != ?")
                args.append(value[1:])
            else:
                conds.append("f.bucket_name = ?")
                args.append(value)
        upload_type = q.get("upload_type")
        if upload_type:
            if upload_type not in ("try", "regular"):
                raise UploadError("Invalid upload_type (try or regular)")
            conds.append("f.try_symbols = ?")
            args.append(upload_type == "try")
        page = page_number(q.get("page"))
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        db = self.ctx.db
        total = db.fetchval(f"SELECT COUNT(*) FROM file_uploads f{where}", args)
        rows = db.fetchall(
            f"SELECT {FILE_COLUMNS}, {FILE_UPLOAD_COLUMNS} {FILE_JOIN}{where} "
            "ORDER BY f.created_at DESC, f.id DESC LIMIT ? OFFSET ?",
            [*args, FILES_BATCH + 1, (page - 1) * FILES_BATCH],
        )
        files = []
        for row in rows[:FILES_BATCH]:
            item = _file_json(row)
            item["upload"] = _file_upload_json(row)
            files.append(item)
        return {
            "files": files,
            "has_next": len(rows) > FILES_BATCH,
            "batch_size": FILES_BATCH,
            "total": int(total or 0),
        }


class FileResource(ApiResource):
    endpoint = "upload_file"

    def get(self, req: falcon.Request, principal: Principal, **params: Any) -> dict[str, Any]:
        row = self.ctx.db.fetchone(
            f"SELECT {FILE_COLUMNS}, {FILE_UPLOAD_COLUMNS} {FILE_JOIN} WHERE f.id = ?",
            (params["file_id"],),
        )
        if row is None:
            raise UploadError("File not found", 404)
        owner = row["u_user_id"]
        if owner != principal.user_id and not principal.has_perm(VIEW_ALL_UPLOADS):
            raise UploadError("Insufficient access to view this file", 403)
        item = _file_json(row)
        item["url"] = f"/{row['key']}" + ("?try" if row["try_symbols"] else "")
        for field in ("debug_filename", "debug_id", "code_file", "code_id", "generator"):
            item[field] = row[field]
        item["upload"] = _file_upload_json(row)
        return {"file": item}


class StatsResource(ApiResource):
    endpoint = "stats"

    def get(self, req: falcon.Request, principal: Principal, **params: Any) -> dict[str, Any]:
        with metrics.timer("api_stats"):
            all_uploads = principal.has_perm(VIEW_ALL_UPLOADS)
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            ranges = {
                "today": (today, today + timedelta(days=1)),
                "yesterday": (today - timedelta(days=1), today),
                "last_30_days": (today - timedelta(days=30), today + timedelta(days=1)),
            }
            stats: dict[str, Any] = {"all_uploads": all_uploads}
            for name, (start, end) in ranges.items():
                sql = "SELECT COUNT(*) AS count, SUM(CAST(size AS DOUBLE PRECISION)) AS total_size FROM uploads WHERE created_at >= ? AND created_at < ?"
                args: list[Any] = [start, end]
                if not all_uploads:
                    sql += " AND user_id = ?"
                    args.append(principal.user_id)
                row = self.ctx.db.fetchone(sql, args) or {}
                stats[name] = {
                    "count": int(row.get("count") or 0),
                    "total_size": int(row.get("total_size") or 0),
                }
            return {"stats": {"uploads": stats}}


class AuthInfoResource:
    """``POST /upload/auth_info/``: who the token is and which protocol to use."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with metrics.timer("api", tags=["endpoint:auth"]):
            principal = authenticate(req, resp, self.ctx.db, any_of=UPLOAD_PERMISSIONS, drain=True)
            resp.media = {
                "email": principal.email,
                "user_id": principal.user_id,
                "try_symbols": principal.has_perm(UPLOAD_TRY_SYMBOLS),
                "token_expires_at": int(principal.token_expires_at.timestamp()),
                "upload_api_version": principal.preferred_upload_api_version,
            }


def add_api_routes(app: falcon.App, ctx: AppContext) -> None:
    app.add_route("/api/uploads/", UploadsResource(ctx))
    # Ids beyond a BIGINT match no route (404) instead of overflowing the driver.
    app.add_route(f"/api/uploads/upload/{{upload_id:int(max={BIGINT_MAX})}}", UploadResource(ctx))
    app.add_route("/api/uploads/files/", FilesResource(ctx))
    app.add_route(f"/api/uploads/files/file/{{file_id:int(max={BIGINT_MAX})}}", FileResource(ctx))
    app.add_route("/api/stats/", StatsResource(ctx))
    app.add_route("/upload/auth_info/", AuthInfoResource(ctx))
