# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Downloads found and missing per UTC day, for the Stats page.

The download route calls :meth:`DownloadCounts.record` once per answer: it
adds one to an in-memory counter (a dictionary update under a lock, no I/O).
A background thread (:class:`tecken_symbols.flusher.Flusher`) writes the
counters every ``flush_interval`` seconds with one upsert per day, so a busy
worker writes a few rows a minute however many downloads it serves.

Found: answered with the object (``302`` to it for GET, ``200`` for HEAD).
Missing: answered ``404`` (including requests Tecken ignores, such as
``file.ptr``). A code-id redirect (``302`` to another path of this service)
is neither: the request that follows it is counted."""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, timedelta
from typing import Any

import falcon

from tecken_symbols.db import Database, DatabaseError, utcnow
from tecken_symbols.flusher import Flusher

logger = logging.getLogger(__name__)

EPOCH = date(1970, 1, 1)
UPSERT = (
    "INSERT INTO download_counts (day, found, missing) VALUES (?, ?, ?) "
    "ON CONFLICT (day) DO UPDATE SET found = download_counts.found + excluded.found, "
    "missing = download_counts.missing + excluded.missing"
)


class DownloadCounts:
    def __init__(self, db: Database, *, enabled: bool = True, flush_interval: float = 30) -> None:
        self.db = db
        self.enabled = enabled
        #: (day number, found) -> count since the last flush.
        self._pending: dict[tuple[int, bool], int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher = Flusher("download-counts-flusher", flush_interval, self.flush)

    def record(self, resp: falcon.Response) -> None:
        """Count one download answer (the download route's hook)."""
        if not self.enabled:
            return
        code = resp.status_code
        if code == 302:
            found = not resp.get_header("Location", "/").startswith("/")
            if not found:
                return
        elif code == 404 or code == 200:
            found = code == 200
        else:
            return
        key = (int(time.time() // 86400), found)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + 1
        self._flusher.ensure()

    def flush(self) -> int:
        """Write the buffered counts; the number of days written. On a
        database error the counts stay buffered for the next flush."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            days: dict[int, list[int]] = {}
            for (day, found), n in batch.items():
                days.setdefault(day, [0, 0])[0 if found else 1] += n
            try:
                self.db.executemany(UPSERT, [(d, f, m) for d, (f, m) in sorted(days.items())])
            except DatabaseError as exc:
                logger.warning("could not record download counts: %s", exc)
                with self._lock:
                    for key, n in batch.items():
                        self._pending[key] = self._pending.get(key, 0) + n
                return 0
            return len(days)

    def stop(self) -> None:
        self._flusher.stop()
        self.enabled = False


def per_day(db: Database, days: int) -> list[dict[str, Any]]:
    """``days`` UTC days up to today: ``{"day", "found", "missing"}`` each."""
    today = utcnow().date()
    first = (today - EPOCH).days - days + 1
    counts = {
        int(r["day"]): (int(r["found"]), int(r["missing"]))
        for r in db.fetchall(
            "SELECT day, found, missing FROM download_counts WHERE day >= ?", (first,)
        )
    }
    return [
        {
            "day": EPOCH + timedelta(days=n),
            "found": counts.get(n, (0, 0))[0],
            "missing": counts.get(n, (0, 0))[1],
        }
        for n in range(first, first + days)
    ]
