# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``POST /upload/v2/`` (spec 2.6) and its completion.

The client declares files (key, size, md5); the answer says per file whether
to skip it, upload it, or what is wrong. The protocol is the upload
backend's (``SYMBOLS_UPLOAD_V2_PROTOCOL=auto``): on GCS ``gcs-resumable``
and on S3 ``s3-presigned-put``, where the client writes each object straight
to the storage (:mod:`tecken_symbols.upload.direct` verifies and records
them); on the filesystem ``tecken-put``: the client PUTs each file's bytes
(gzipped itself when ``content_encoding`` is ``gzip``) to the answer's URL on
this service, with the same token. The service checks the bytes against the
declared size and md5 (and the .sym checks at the door), stores them with the
spec's metadata, records the FileUpload row (which Tecken's v2 never does, so
code-id lookups and syminfo work for v2 uploads too) and sets the upload's
``completed_at`` when its last file lands."""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import falcon
import markus

from tecken_shared.storage import StorageError
from tecken_symbols.accounts import UPLOAD_PERMISSIONS, UPLOAD_SYMBOLS
from tecken_symbols.auth import Principal, authenticate, drain_body
from tecken_symbols.bodies import body_stream
from tecken_symbols.context import AppContext
from tecken_symbols.db import DatabaseError
from tecken_symbols.upload import records
from tecken_symbols.upload.archive import KEY_RE, key_problem
from tecken_symbols.upload.errors import UploadError, answer_error
from tecken_symbols.upload.filters import BIGINT_MAX
from tecken_symbols.upload.store import FileResult, FileStorer

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

PROTOCOL = "tecken-put"
MD5_RE = re.compile(r"[0-9a-f]{32}")
MALFORMED = "malformed JSON request body"
MAX_BODY = 16 * 1024 * 1024


def parse_request(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("files"), list):
        raise UploadError(MALFORMED)
    files = []
    for item in body["files"]:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("key"), str)
            or not isinstance(item.get("md5_hash"), str)
            or not isinstance(item.get("size"), int)
            or isinstance(item.get("size"), bool)
            or not 0 <= item["size"] <= BIGINT_MAX
        ):
            raise UploadError(MALFORMED)
        files.append(item)
    return files


class UploadV2Resource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.upload

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with metrics.timer("upload_v2"):
            principal = authenticate(req, resp, self.ctx.db, any_of=UPLOAD_PERMISSIONS, drain=True)
            try:
                raw = body_stream(req).read(MAX_BODY + 1)
                if len(raw) > MAX_BODY:
                    raise UploadError("request body too large", 413)
                try:
                    body = json.loads(raw or b"null")
                except ValueError as exc:
                    raise UploadError(MALFORMED) from exc
                except RecursionError as exc:
                    raise UploadError(f"{MALFORMED} (nested too deeply)") from exc
                files = parse_request(body)
                if len(files) > self.settings.v2_max_files:
                    raise UploadError("too many files")
                resp.media = self._handle(principal, files)
                resp.status = falcon.HTTP_201
            except UploadError as exc:
                answer_error(resp, exc)

    def _action(
        self, storer: FileStorer, protocol: str, item: dict[str, Any], upload_id: int
    ) -> dict[str, Any]:
        with metrics.timer("initiate_file_upload"):
            return self._decide(storer, protocol, item, upload_id)

    def _decide(
        self, storer: FileStorer, protocol: str, item: dict[str, Any], upload_id: int
    ) -> dict[str, Any]:
        key = item["key"]
        match = KEY_RE.fullmatch(key)
        if not match:
            metrics.incr("upload_file_upload_error")
            return {"type": "error", "msg": "invalid key"}
        if not MD5_RE.fullmatch(item["md5_hash"]):
            metrics.incr("upload_file_upload_error")
            return {"type": "error", "msg": "invalid MD5 hex digest"}
        if problem := key_problem(match.groups()):
            metrics.incr("upload_file_upload_error")
            return {"type": "error", "msg": f"invalid key: {problem}"}
        if item["size"] > self.settings.max_size:
            metrics.incr("upload_file_upload_error")
            return {
                "type": "error",
                "msg": f"size {item['size']} is larger than the limit {self.settings.max_size} "
                "(SYMBOLS_UPLOAD_MAX_SIZE)",
            }
        nkey = normalize_key(key)
        found, _ = storer.existing(nkey)
        if any(
            info.metadata.get("original_size") == str(item["size"])
            and info.metadata.get("original_md5_hash") == item["md5_hash"]
            for info in found
        ) and self.ctx.direct.settle(nkey):
            # (An object another direct upload wrote is verified first.)
            metrics.incr("upload_file_upload_skip")
            return {"type": "skip"}
        if protocol != PROTOCOL:
            action = self.ctx.direct.start(
                storer, protocol, upload_id, nkey, item["size"], item["md5_hash"]
            )
            metrics.incr("upload_file_upload_upload")
            return action
        compressed = storer.compresses(key)
        metrics.incr("upload_file_upload_upload")
        url = f"{self.ctx.public_url}/upload/v2/files/{upload_id}/{quote(normalize_key(key))}"
        return {
            "type": "upload",
            "url": url,
            "method": "PUT",
            "content_encoding": "gzip" if compressed else None,
        }

    def _handle(self, principal: Principal, files: list[dict[str, Any]]) -> dict[str, Any]:
        try_symbols = not principal.has_perm(UPLOAD_SYMBOLS)
        storer = self.ctx.writer.storer(try_symbols)
        protocol = self.ctx.direct.protocol(storer)
        db = self.ctx.db
        try:
            upload_id = records.create_upload(
                db,
                user_id=principal.user_id,
                filename="",
                bucket_name=storer.target.bucket_name,
                # Each declared size is at most max_size (else refused), so the
                # sum of an upload and SUM() over uploads stay far from overflow.
                size=sum(f["size"] for f in files if f["size"] <= self.settings.max_size),
                try_symbols=try_symbols,
                upload_protocol=protocol,
            )
            workers = max(1, min(self.settings.workers * 4, len(files) or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                actions = list(
                    pool.map(lambda f: self._action(storer, protocol, f, upload_id), files)
                )
            skipped = [
                normalize_key(f["key"])
                for f, a in zip(files, actions, strict=True)
                if a["type"] == "skip"
            ]
            pending = 0
            for item, action in zip(files, actions, strict=True):
                if action["type"] != "upload":
                    continue
                pending += 1
                result = FileResult(
                    key=normalize_key(item["key"]),
                    compressed=action["content_encoding"] == "gzip",
                    original_size=item["size"],
                    md5=item["md5_hash"],
                )
                records.add_file_upload(
                    db, upload_id, storer.target.bucket_name, result, try_symbols, completed=False
                )
            records.finish_upload(db, upload_id, skipped_keys=skipped, error=None)
            if pending:
                db.execute("UPDATE uploads SET completed_at = NULL WHERE id = ?", (upload_id,))
            row = records.get_upload(db, upload_id)
        except (StorageError, DatabaseError) as exc:
            raise UploadError(
                f"Storage or database not available ({exc}); retry later", 503
            ) from exc
        assert row is not None
        metrics.incr(
            "upload_uploads",
            tags=[f"try:{str(try_symbols).lower()}", f"bucket:{storer.target.bucket_name}"],
        )
        return {
            "id": upload_id,
            "created_at": int(row["created_at"].timestamp()),
            "user": principal.email,
            "try_symbols": try_symbols,
            "upload_protocol": protocol,
            "files": [{"key": f["key"], "action": a} for f, a in zip(files, actions, strict=True)],
        }


def normalize_key(key: str) -> str:
    match = KEY_RE.fullmatch(key)
    if not match:
        return key
    debug_file, debug_id, name = match.groups()
    return f"{debug_file}/{debug_id.upper()}/{name}"


class UploadV2FileResource:
    """``PUT /upload/v2/files/{upload_id}/{key}``: the bytes of one declared file."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_put(self, req: falcon.Request, resp: falcon.Response, upload_id: int, key: str) -> None:
        principal = authenticate(req, resp, self.ctx.db, any_of=UPLOAD_PERMISSIONS, drain=True)
        try:
            resp.media = self._handle(req, principal, upload_id, key)
        except UploadError as exc:
            drain_body(req)
            answer_error(resp, exc)

    def _handle(
        self, req: falcon.Request, principal: Principal, upload_id: int, key: str
    ) -> dict[str, Any]:
        db = self.ctx.db
        upload = records.get_upload(db, upload_id)
        if upload is None or upload["user_id"] != principal.user_id:
            raise UploadError(f"No upload {upload_id} of yours", 404)
        if not upload["try_symbols"] and not principal.has_perm(UPLOAD_SYMBOLS):
            # RT-15: a token that may only upload try symbols never writes
            # regular storage, whoever declared the upload.
            raise UploadError(
                f"Upload {upload_id} goes to regular storage; this token may only upload "
                "try symbols (it lacks upload_symbols)",
                403,
            )
        row = records.pending_file(db, upload_id, key)
        if row is None:
            raise UploadError(f"Upload {upload_id} did not declare {key!r} for upload", 404)
        writer = self.ctx.writer
        result = writer.storer(bool(upload["try_symbols"])).store_stream(
            key,
            body_stream(req),
            compressed=bool(row["compressed"]),
            declared_size=int(row["original_size"] or 0),
            declared_md5=row["md5_hash"],
        )
        try:
            done = writer.complete(upload_id, row["id"], result)
        except DatabaseError as exc:
            writer.forget_unrecorded(result)
            raise UploadError(f"Stored but not recorded ({exc}); retry the PUT", 503) from exc
        return {"key": key, "size": result.stored_size, "upload_completed": done}


class UploadV2CompleteResource:
    """``POST /upload/v2/complete/{upload_id}``: the client says it wrote its
    files; each pending file written straight to the storage is verified and
    recorded (or deleted when it fails its check)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response, upload_id: int) -> None:
        principal = authenticate(req, resp, self.ctx.db, any_of=UPLOAD_PERMISSIONS, drain=True)
        drain_body(req)
        try:
            with metrics.timer("upload_v2_complete"):
                resp.media = self._handle(principal, upload_id)
        except (StorageError, DatabaseError) as exc:
            answer_error(resp, UploadError(f"Storage or database not available ({exc})", 503))
        except UploadError as exc:
            answer_error(resp, exc)

    def _handle(self, principal: Principal, upload_id: int) -> dict[str, Any]:
        db = self.ctx.db
        upload = records.get_upload(db, upload_id)
        if upload is None or upload["user_id"] != principal.user_id:
            raise UploadError(f"No upload {upload_id} of yours", 404)
        verdicts = self.ctx.direct.verify_upload(upload)
        done = records.mark_completed_if_done(db, upload_id)
        upload = records.get_upload(db, upload_id)
        assert upload is not None
        return {
            "id": upload_id,
            "upload_protocol": upload["upload_protocol"],
            "upload_completed": done,
            "error": upload["error"],
            "files": [v.as_json() for v in verdicts],
        }


def add_v2_routes(app: falcon.App, ctx: AppContext) -> None:
    app.add_route("/upload/v2/", UploadV2Resource(ctx))
    app.add_route(
        f"/upload/v2/complete/{{upload_id:int(max={BIGINT_MAX})}}", UploadV2CompleteResource(ctx)
    )
    app.add_route(
        f"/upload/v2/files/{{upload_id:int(max={BIGINT_MAX})}}/{{key:path}}",
        UploadV2FileResource(ctx),
    )
