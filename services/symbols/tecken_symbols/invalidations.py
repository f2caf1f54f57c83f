# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The invalidation log: how a write in one process reaches the in-process
lookup caches of every other worker, on this host and on every other node.

The symbol writer appends the cache keys a write or delete made stale to the
``cache_invalidations`` table, in the transaction that records the write when
there is one. Each worker remembers the highest id it has applied; before it
answers a lookup from memory it reads ``WHERE id > last_seen`` when its last
read is ``poll_interval`` seconds old or older, and drops exactly those keys.
So every answer given ``poll_interval`` seconds after the writer committed
reflects the write (see ``docs/symbols.rst``, "Lookup cache invalidation").

Appenders take a one-row lock first, so ids become visible in id order and a
reader never passes a row that commits late. When the log cannot be read (the
database is down), the worker drops its in-process entries and does not use
them until a read succeeds; a worker that has not read the log for half the
retention (rows may have been pruned) drops everything and starts over."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import markus

from tecken_symbols.db import Cursorish, Database, DatabaseError, utcnow

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

#: Rows older than this are pruned (by writers, at most every PRUNE_EVERY seconds).
RETENTION = 86400.0
PRUNE_EVERY = 300.0
#: After a failed read, seconds before the next try (in-process entries unused meanwhile).
RETRY_AFTER = 5.0
#: More unread rows than this: drop everything in memory rather than read them all.
MAX_ROWS = 10_000


@dataclass
class Changes:
    """What a poll found: keys to drop, or ``everything`` when the worker
    cannot tell which keys changed."""

    keys: list[str] = field(default_factory=list)
    everything: bool = False


class InvalidationLog:
    """Appends to and reads ``cache_invalidations`` for one process."""

    def __init__(
        self,
        db: Database,
        *,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_seen: int | None = None
        self._last_ok = 0.0
        self._next_poll = 0.0
        self._readable = False
        self._next_prune = 0.0

    # -- writer side -------------------------------------------------------

    def append(self, tx: Cursorish, keys: Sequence[str]) -> None:
        """Log ``keys`` inside the caller's transaction (call it last in the
        transaction: it serialises appenders until the commit)."""
        if not keys:
            return
        tx.execute("UPDATE cache_invalidation_appends SET appended = appended + 1 WHERE id = 1")
        now = utcnow()
        tx.executemany(
            "INSERT INTO cache_invalidations (cache_key, created_at) VALUES (?, ?)",
            [(key, now) for key in keys],
        )
        if self._clock() >= self._next_prune:
            self._next_prune = self._clock() + PRUNE_EVERY
            tx.execute(
                "DELETE FROM cache_invalidations WHERE created_at < ?",
                (now - timedelta(seconds=RETENTION),),
            )

    # -- reader side -------------------------------------------------------

    def poll(self) -> tuple[bool, Changes | None]:
        """``(usable, changes)``: whether in-process entries may be used now,
        and what to drop first (None when no read was due)."""
        if self._clock() < self._next_poll:
            return self._readable, None
        with self._lock:
            now = self._clock()
            if now < self._next_poll:
                return self._readable, None
            try:
                changes = self._read(now)
            except DatabaseError as exc:
                if self._readable or self._last_seen is None:
                    logger.warning(
                        "cannot read the cache invalidation log (%s); in-process cache "
                        "entries unused until it can be read",
                        exc,
                    )
                metrics.incr("cache_invalidation.read_error")
                self._readable = False
                self._last_seen = None
                self._next_poll = now + RETRY_AFTER
                return False, Changes(everything=True)
            self._readable = True
            self._last_ok = now
            self._next_poll = now + self.poll_interval
            return True, changes

    def restart(self) -> None:
        """Make the next poll start over (and answer ``everything``)."""
        with self._lock:
            self._last_seen = None
            self._next_poll = 0.0

    def _read(self, now: float) -> Changes:
        if self._last_seen is None or now - self._last_ok > RETENTION / 2:
            self._last_seen = int(self.db.fetchval("SELECT MAX(id) FROM cache_invalidations") or 0)
            return Changes(everything=True)
        rows = self.db.fetchall(
            "SELECT id, cache_key FROM cache_invalidations WHERE id > ? ORDER BY id LIMIT ?",
            (self._last_seen, MAX_ROWS),
        )
        if not rows:
            return Changes()
        if len(rows) == MAX_ROWS:
            self._last_seen = None
            return self._read(now)
        self._last_seen = int(rows[-1]["id"])
        return Changes(keys=[r["cache_key"] for r in rows])
