# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``GET /missingsymbols.csv`` (Socorro's format) and ``GET /missingsymbols/``
(a paginated JSON list) over the missing-symbol counts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain, islice

import falcon

from tecken_shared.breakpad import HEX_RE
from tecken_symbols import missing
from tecken_symbols.context import AppContext
from tecken_symbols.download import _has_param
from tecken_symbols.errors import JSONError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BATCH_SIZE = 100
MAX_BATCH_SIZE = 1000
#: Keeps the row offset within a 64-bit integer (SQLite and PostgreSQL).
MAX_PAGE = 1_000_000_000


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad(message: str) -> falcon.HTTPError:
    return JSONError(falcon.HTTP_400, message)


class MissingSymbolsCSVResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.missing.flush()
        rows = missing.csv_rows(self.ctx.db, missing.cutoff(_has_param(req, "today")))
        # The first batch is read now, so a database fault is a 503 before
        # any byte is sent; the rest is read while streaming.
        first = list(islice(rows, missing.CSV_BATCH))
        rows = chain(first, rows)
        resp.content_type = "text/csv; charset=utf-8"
        resp.set_header("Content-Disposition", 'attachment; filename="missing-symbols.csv"')
        resp.stream = _csv_lines(rows)


def safe_cell(value: str | None) -> str:
    """A CSV cell no spreadsheet takes for a formula (RT-17): a leading
    ``= + - @``, tab or carriage return gets a ``'`` before it."""
    value = value or ""
    return "'" + value if value[:1] in FORMULA_STARTS else value


def _csv_lines(rows: Iterator[dict]) -> Iterator[bytes]:
    """The CSV, encoded a batch of rows at a time (streamed, never whole)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["debug_file", "debug_id", "code_file", "code_id"])
    for n, row in enumerate(rows, 1):
        writer.writerow(
            [safe_cell(row[name]) for name in ("debug_file", "debug_id", "code_file", "code_id")]
        )
        if n % missing.CSV_BATCH == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


class MissingSymbolsListResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.ctx.missing.flush()
        try:
            page = int(req.get_param("page") or 1)
            batch_size = int(req.get_param("batch_size") or BATCH_SIZE)
        except ValueError as exc:
            raise _bad("page and batch_size must be whole numbers") from exc
        if not 1 <= page <= MAX_PAGE or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise _bad(
                f"page must be between 1 and {MAX_PAGE} "
                f"and batch_size between 1 and {MAX_BATCH_SIZE}"
            )
        since = None
        if req.get_param("since"):
            try:
                # today/yesterday too, as the uploads filters accept (issue 12).
                raw = req.get_param("since").strip().lower()
                midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                relative = {"today": midnight, "yesterday": midnight - timedelta(days=1)}
                since = relative.get(raw) or datetime.fromisoformat(raw.upper())
                if since.tzinfo is None:
                    since = since.replace(tzinfo=UTC)
                since = since.astimezone(UTC)
            except (ValueError, OverflowError) as exc:
                raise _bad(
                    "since must be an ISO-8601 date or date-time (e.g. 2026-11-23), today or yesterday"
                ) from exc
        sort = req.get_param("sort") or "modified_at"
        if sort not in ("modified_at", "created_at", "count"):
            raise _bad("sort must be modified_at, created_at or count")
        if any("\x00" in (req.get_param(name) or "") for name in ("debug_file", "code_file")):
            raise _bad("debug_file and code_file must not contain NUL characters")
        debug_id = req.get_param("debug_id")
        if debug_id and not HEX_RE.fullmatch(debug_id):
            raise _bad("debug_id must be hexadecimal")
        rows, total = missing.list_page(
            self.ctx.db,
            page=page,
            batch_size=batch_size,
            debug_file=req.get_param("debug_file"),
            debug_id=debug_id,
            code_file=req.get_param("code_file"),
            since=since,
            sort=sort,
            reverse=(req.get_param("reverse") or "true").lower() not in ("false", "0", "no"),
        )
        resp.media = {
            "missing_symbols": [
                {
                    "id": int(r["id"]),
                    "debug_file": r["debug_file"],
                    "debug_id": r["debug_id"],
                    "symbols_file": r["symbols_file"],
                    "code_file": r["code_file"] or None,
                    "code_id": r["code_id"] or None,
                    "protocol": r["protocol"],
                    "count": int(r["count"]),
                    "created_at": _iso(r["created_at"]),
                    "modified_at": _iso(r["modified_at"]),
                }
                for r in rows
            ],
            "page": page,
            "batch_size": batch_size,
            "total": total,
            "has_next": page * batch_size < total,
        }


def add_missing_routes(app: falcon.App, ctx: AppContext) -> None:
    app.add_route("/missingsymbols.csv", MissingSymbolsCSVResource(ctx))
    app.add_route("/missingsymbols/", MissingSymbolsListResource(ctx))
    app.add_route("/api/missingsymbols/", MissingSymbolsListResource(ctx))
