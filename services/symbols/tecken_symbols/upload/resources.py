# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``POST /upload/`` (v1: multipart zip, or ``url`` for upload by download URL)."""

from __future__ import annotations

import logging

import falcon
import markus

from tecken_symbols.accounts import UPLOAD_PERMISSIONS, UPLOAD_SYMBOLS, UPLOAD_TRY_SYMBOLS
from tecken_symbols.auth import Principal, authenticate, drain_body
from tecken_symbols.bodies import body_stream, spool_chunked
from tecken_symbols.context import AppContext
from tecken_symbols.upload import by_url, records
from tecken_symbols.upload.archive import check_archive_name, spool_stream
from tecken_symbols.upload.errors import UploadError, answer_error
from tecken_symbols.upload.service import Uploader

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

NO_FILE = "Must be multipart form data with at least one file"
TRUE_VALUES = {"1", "true", "yes", "on", "y", "t"}
FALSE_VALUES = {"", "0", "false", "no", "off", "n", "f"}
FORM_LIMIT = 64 * 1024


def parse_try(value: str | None) -> bool | None:
    """The ``try`` field: None when absent. Only true-ish or false-ish values
    are accepted (Tecken took any non-empty string, even "0", as true)."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    raise UploadError(f"Invalid 'try' value {value!r}: use true/false (or 1/0)")


def decide_try(principal: Principal, requested: bool | None) -> bool:
    """Try or regular. Without the field: try unless the token may upload
    regular symbols. A token that may only upload try symbols never writes
    regular storage, whatever the field says (403)."""
    may_regular = principal.has_perm(UPLOAD_SYMBOLS)
    if requested is None:
        return not may_regular
    if not requested and not may_regular:
        raise UploadError(
            "This token may only upload try symbols (it lacks upload_symbols); send try=true "
            "or use a token with upload_symbols",
            403,
        )
    if requested and not (may_regular or principal.has_perm(UPLOAD_TRY_SYMBOLS)):
        raise UploadError("Forbidden", 403)
    return requested


class UploadResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.upload
        self.uploader = Uploader(ctx)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with metrics.timer("upload_archive"):
            principal = authenticate(req, resp, self.ctx.db, any_of=UPLOAD_PERMISSIONS, drain=True)
            paths: list[str] = []
            try:
                row = self._handle(req, principal, paths)
            except UploadError as exc:
                if exc.status != 413:
                    drain_body(req)
                answer_error(resp, exc)
                return
            finally:
                for path in paths:
                    self.uploader.cleanup_file(path)
            resp.status = falcon.HTTP_201
            resp.media = {"upload": records.upload_response(row)}

    def _handle(self, req: falcon.Request, principal: Principal, paths: list[str]) -> dict:
        settings = self.settings
        ctype = (req.content_type or "").lower()
        if req.content_length and req.content_length > settings.max_size + FORM_LIMIT:
            raise UploadError(
                f"Archive too large ({req.content_length} bytes; the limit is {settings.max_size})",
                413,
            )
        fields: dict[str, str] = {}
        archive: tuple[str, str, int] | None = None  # (filename, path, size)
        if ctype.startswith("multipart/form-data"):
            # Falcon's multipart parser needs a length: a chunked body is
            # spooled (bounded) first (RT-10, RT-24).
            spooled = spool_chunked(req, settings.max_size + FORM_LIMIT, settings.temp_root)
            if spooled is not None:
                paths.append(spooled)
            archive = self._read_multipart(req, fields, paths)
        elif ctype.startswith("application/x-www-form-urlencoded"):
            body = body_stream(req).read(FORM_LIMIT + 1)
            if len(body) > FORM_LIMIT:
                raise UploadError("Form too large")
            from urllib.parse import parse_qs

            fields = {
                k: v[0]
                for k, v in parse_qs(
                    body.decode("utf-8", "replace"), keep_blank_values=True
                ).items()
            }
        is_try = decide_try(principal, parse_try(fields.get("try")))
        if archive is not None:
            filename, path, size = archive
            return self.uploader.process_archive(
                user_id=principal.user_id,
                path=path,
                size=size,
                filename=filename,
                try_symbols=is_try,
            )
        if fields.get("url") is not None:
            return self._by_url(principal, fields["url"], is_try, paths)
        raise UploadError(NO_FILE)

    def _read_multipart(
        self, req: falcon.Request, fields: dict[str, str], paths: list[str]
    ) -> tuple[str, str, int] | None:
        archive = None
        try:
            form = req.get_media()
            for part in form:
                if part.filename is not None:
                    if archive is not None:
                        part.stream.read()  # only the first file counts
                        continue
                    # The field name is the upload's filename (Tecken's rule); when
                    # only the part's filename names a zip (curl -F file=@x.zip),
                    # that one is taken instead of refusing.
                    name = part.name or part.filename
                    if not name.lower().endswith(".zip") and part.filename.lower().endswith(".zip"):
                        name = part.filename
                    check_archive_name(name)
                    path, size = spool_stream(
                        part.stream, self.settings.temp_root, self.settings.max_size
                    )
                    paths.append(path)
                    archive = (name, path, size)
                else:
                    text = part.stream.read(FORM_LIMIT + 1)
                    if len(text) > FORM_LIMIT:
                        raise UploadError(f"Form field '{part.name}' too large")
                    fields[part.name] = text.decode("utf-8", "replace")
        except UnicodeDecodeError as exc:
            raise UploadError("Malformed multipart form data: part headers must be UTF-8") from exc
        except (falcon.MediaMalformedError, falcon.MediaNotFoundError) as exc:
            raise UploadError(
                f"Malformed multipart form data: {exc.description or exc.title}"
            ) from exc
        except falcon.HTTPError as exc:
            raise UploadError(
                f"Malformed multipart form data: {exc.description or exc.title}"
            ) from exc
        return archive

    def _by_url(self, principal: Principal, url: str, is_try: bool, paths: list[str]) -> dict:
        settings = self.settings
        fetch = by_url.Fetch(settings)
        resolved = by_url.resolve(url, settings, fetch)
        check_archive_name(resolved.filename)
        path, size = by_url.download(resolved, settings, settings.temp_root, fetch)
        paths.append(path)
        return self.uploader.process_archive(
            user_id=principal.user_id,
            path=path,
            size=resolved.size if resolved.size is not None else size,
            filename=resolved.filename,
            try_symbols=is_try,
            download_url=resolved.url,
            redirect_urls=resolved.redirect_urls,
        )
