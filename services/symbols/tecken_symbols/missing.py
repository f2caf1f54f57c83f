# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Missing-symbol bookkeeping: downloads answered 404 are counted in memory
and written to the database in batches (one transaction per flush, one upsert
per distinct symbol), by a background thread every ``flush_interval`` seconds.
A busy worker therefore writes at most a handful of times a minute, however
many 404s it serves.

The table is bounded (RT-08): a query string's ``code_file``/``code_id`` are
kept only when they look like a module name and a hex id (anything else is
counted under the symbol alone); once the table holds ``max_rows`` rows only
existing rows are counted (new symbols are dropped and counted in a metric);
rows not seen for ``retention_days`` are deleted by the flusher (at most once
an hour per worker) and by ``cleanup-uploads``."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import markus

from tecken_symbols.db import Database, DatabaseError, utcnow
from tecken_symbols.flusher import Flusher

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

MAX_FIELD_LENGTH = 150
#: A module name as a download path holds one; never a spreadsheet formula.
CODE_FILE_RE = re.compile(r"[A-Za-z0-9_.$(~][^\x00-\x1f\x7f-\U0010ffff\\^`><{}\[\]#%\"'|/]*")
HEX_RE = re.compile(r"[0-9A-F]+")
PRUNE_EVERY = 3600.0  # seconds between a worker's retention deletes
CSV_BATCH = 1000

UPDATE_ONLY = (
    "UPDATE missing_symbols SET count = count + ?, modified_at = ?, protocol = ? "
    "WHERE debug_file = ? AND debug_id = ? AND symbols_file = ? AND code_file = ? "
    "AND code_id = ?"
)

UPSERT = (
    "INSERT INTO missing_symbols (debug_file, debug_id, symbols_file, code_file, code_id, "
    "protocol, count, created_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (debug_file, debug_id, symbols_file, code_file, code_id) DO UPDATE SET "
    "count = missing_symbols.count + excluded.count, modified_at = excluded.modified_at, "
    "protocol = excluded.protocol"
)
#: The protocol of the Tecken download routes (the others: symsrv, ssqp, debuginfod).
TECKEN = "tecken"


@dataclass
class _Pending:
    count: int
    first_seen: datetime
    last_seen: datetime


class MissingSymbols:
    def __init__(
        self,
        db: Database,
        *,
        enabled: bool = True,
        flush_interval: float = 10,
        max_buffer: int = 10000,
        max_rows: int = 1_000_000,
        retention_days: float = 30,
    ) -> None:
        self.db = db
        self.max_rows = max_rows
        self.retention_days = retention_days
        self._last_prune = 0.0
        self.enabled = enabled
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self._pending: dict[tuple[str, str, str, str, str, str], _Pending] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher = Flusher("missing-symbols-flusher", flush_interval, self.flush)

    def record(
        self,
        debug_file: str,
        debug_id: str,
        symbols_file: str,
        code_file: str = "",
        code_id: str = "",
        protocol: str = TECKEN,
    ) -> bool:
        """Count one 404 of ``protocol``. Returns False when ignored (field too
        long or holding a NUL, which PostgreSQL text cannot store; disabled;
        buffer full)."""
        if not self.enabled:
            return False
        fields = (debug_file, debug_id, symbols_file, code_file or "", code_id or "")
        if any(len(f) > MAX_FIELD_LENGTH or "\x00" in f for f in fields):
            return False
        fields = (debug_file, debug_id, symbols_file, *clean_code(code_file, code_id), protocol)
        now = utcnow()
        with self._lock:
            pending = self._pending.get(fields)
            if pending is None:
                if len(self._pending) >= self.max_buffer:
                    metrics.incr("missing_symbols.dropped")
                    return False
                self._pending[fields] = _Pending(1, now, now)
            else:
                pending.count += 1
                pending.last_seen = now
        self._flusher.ensure()
        return True

    def stop(self) -> None:
        """Stop the flusher thread after a last flush (at shutdown)."""
        self._flusher.stop()
        self.enabled = False

    def pending_count(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write the buffered counts; returns the number of rows upserted. On a
        database error the counts go back into the buffer for the next try."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            rows = [
                (*fields, p.count, p.first_seen, p.last_seen) for fields, p in sorted(batch.items())
            ]
            try:
                with metrics.timer("missing_symbols.flush"):
                    self._prune_if_due()
                    if self.max_rows > 0 and self.row_count() >= self.max_rows:
                        # Full: count what is there, add nothing new.
                        metrics.incr("missing_symbols.capped", len(rows))
                        self.db.executemany(
                            UPDATE_ONLY,
                            [
                                (p.count, p.last_seen, fields[-1], *fields[:-1])
                                for fields, p in sorted(batch.items())
                            ],
                        )
                    else:
                        self.db.executemany(UPSERT, rows)
            except DatabaseError as exc:
                logger.warning("could not record %d missing symbols: %s", len(rows), exc)
                with self._lock:
                    for fields, p in batch.items():
                        if fields in self._pending:
                            cur = self._pending[fields]
                            cur.count += p.count
                            cur.first_seen = min(cur.first_seen, p.first_seen)
                        elif len(self._pending) < self.max_buffer:
                            self._pending[fields] = p
                return 0
            return len(rows)

    def row_count(self) -> int:
        return int(self.db.fetchval("SELECT COUNT(*) FROM missing_symbols") or 0)

    def _prune_if_due(self) -> None:
        now = time.monotonic()
        if self.retention_days > 0 and now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            prune(self.db, self.retention_days)


def clean_code(code_file: str | None, code_id: str | None) -> tuple[str, str]:
    """``code_file`` and ``code_id`` as recorded: kept when they look like a
    module name and a hex id, else both empty (the symbol is still counted)."""
    code_file, code_id = code_file or "", (code_id or "").upper()
    if (code_file and not CODE_FILE_RE.fullmatch(code_file)) or (
        code_id and not HEX_RE.fullmatch(code_id)
    ):
        return "", ""
    return code_file, code_id


def prune(db: Database, retention_days: float, now: datetime | None = None) -> int:
    """Delete rows not seen for ``retention_days``; how many were deleted."""
    if retention_days <= 0:
        return 0
    limit = (now or utcnow()) - timedelta(days=retention_days)
    deleted = db.execute("DELETE FROM missing_symbols WHERE modified_at < ?", (limit,))
    if deleted:
        metrics.incr("missing_symbols.pruned", deleted)
    return deleted


def cutoff(today: bool, now: datetime | None = None) -> datetime:
    """Start of today (UTC) when ``today``, else start of yesterday."""
    now = now or utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start if today else start - timedelta(days=1)


def csv_rows(db: Database, since: datetime, batch: int = CSV_BATCH) -> Iterator[dict]:
    """Socorro's list: .pdb debug files with .sym symbol files changed since
    ``since``, newest rows first, read ``batch`` rows at a time (keyset on the
    id), so memory does not grow with the table."""
    last_id: int | None = None
    while True:
        after = "" if last_id is None else " AND id < ?"
        params: list = [since, "%.pdb", "%.sym"] + ([] if last_id is None else [last_id])
        rows = db.fetchall(
            "SELECT id, debug_file, debug_id, code_file, code_id FROM missing_symbols "  # noqa: S608
            "WHERE modified_at >= ? AND LOWER(debug_file) LIKE ? AND LOWER(symbols_file) LIKE ?"
            f"{after} ORDER BY id DESC LIMIT {int(batch)}",
            params,
        )
        yield from rows
        if len(rows) < batch:
            return
        last_id = int(rows[-1]["id"])


def list_page(
    db: Database,
    *,
    page: int = 1,
    batch_size: int = 100,
    debug_file: str | None = None,
    debug_id: str | None = None,
    code_file: str | None = None,
    since: datetime | None = None,
    sort: str = "modified_at",
    reverse: bool = True,
) -> tuple[list[dict], int]:
    where, params = [], []
    if debug_file:
        where.append("LOWER(debug_file) LIKE ?")
        params.append(f"%{debug_file.lower()}%")
    if debug_id:
        where.append("debug_id = ?")
        params.append(debug_id.upper())
    if code_file:
        where.append("LOWER(code_file) LIKE ?")
        params.append(f"%{code_file.lower()}%")
    if since:
        where.append("modified_at >= ?")
        params.append(since)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    order = {"modified_at": "modified_at", "count": "count", "created_at": "created_at"}[sort]
    direction = "DESC" if reverse else "ASC"
    total = int(db.fetchval(f"SELECT COUNT(*) FROM missing_symbols{clause}", params) or 0)  # noqa: S608
    rows = db.fetchall(
        "SELECT id, debug_file, debug_id, symbols_file, code_file, code_id, protocol, count, "  # noqa: S608
        f"created_at, modified_at FROM missing_symbols{clause} "
        f"ORDER BY {order} {direction}, id {direction} LIMIT ? OFFSET ?",
        [*params, batch_size, (page - 1) * batch_size],
    )
    return rows, total
