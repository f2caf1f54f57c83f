# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The keys of every stored symbol object, so that a download of a key no
upload ever stored is answered 404 without a storage request.

The ``stored_keys`` table holds every key the symbol writer stored (added in
the transaction that records the file, never pruned by upload retention) and
the keys ``tecken-symbols-admin import-keys`` listed from a bucket the
service never recorded (a migrated bucket, extra read-only storage).

Each worker holds a Bloom filter of those keys (:class:`KnownKeys`, about
1.8 MB per million keys, false positives 0.1%): a key outside the filter was
never stored; a key inside may be (the caches and storage decide). The
filter is loaded in a background thread when the worker first polls the
invalidation log, and again whenever the worker cannot tell what it missed
(the log could not be read, or was not read for half a day); until it is
loaded, lookups ask storage. After loading it follows the invalidation log:
every key a write logs is added, here at once and in every other worker
within ``SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL`` seconds (the bound of
every other cached answer).

Keys are never removed (a concurrent upload of a key being deleted could
lose its row): a deleted object's key, like a false positive, costs one
storage request when asked, never a wrong answer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import markus
from rbloom import Bloom

from tecken_symbols.db import Cursorish, Database, DatabaseError, utcnow

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

#: Rows read per query while loading.
BATCH = 20_000
#: The filter is sized for twice the keys loaded, at least this many; past
#: its size it is loaded again (its false-positive rate would grow).
MIN_CAPACITY = 100_000
FALSE_POSITIVE_RATE = 0.001
#: Cache keys of existence answers (see Lookups.cache_keys) name a storage key.
EXISTENCE_PREFIXES = ("r:", "t:")
#: After a failed load, seconds before the next try.
RETRY_AFTER = 5.0

ADD_SQL = "INSERT INTO stored_keys (key, created_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"


def add(tx: Cursorish | Database, keys: Iterable[str]) -> None:
    """Record stored ``keys`` (inside the writer's transaction)."""
    now = utcnow()
    rows = [(key, now) for key in dict.fromkeys(keys)]
    if rows:
        tx.executemany(ADD_SQL, rows)


def iterate(db: Database, batch: int = BATCH) -> Iterator[str]:
    """Every recorded key, in key order, ``batch`` rows per query."""
    last = ""
    while True:
        rows = db.fetchall(
            "SELECT key FROM stored_keys WHERE key > ? ORDER BY key LIMIT ?", (last, batch)
        )
        for row in rows:
            yield row["key"]
        if len(rows) < batch:
            return
        last = rows[-1]["key"]


def logged_keys(db: Database) -> list[str]:
    """Storage keys named by the invalidation log's rows (writes whose
    ``stored_keys`` row may be missing: a failed transaction)."""
    rows = db.fetchall(
        "SELECT DISTINCT cache_key FROM cache_invalidations WHERE cache_key LIKE 'r:%'"
    )
    return [row["cache_key"][2:] for row in rows]


def storage_keys(cache_keys: Iterable[str]) -> list[str]:
    """The storage keys among lookup cache keys (``r:KEY``, ``t:KEY``)."""
    return [k[2:] for k in cache_keys if k.startswith(EXISTENCE_PREFIXES)]


class KnownKeys:
    """One worker's Bloom filter of the recorded keys (see the module doc).

    Lookups call :meth:`may_exist`; the invalidation log's readers call
    :meth:`reload` (after a gap the worker cannot account for) and
    :meth:`add` (keys written since). ``on_reload_needed`` is called when a
    load fails or the filter is full, so the caller makes the next poll
    start over (and call :meth:`reload` again)."""

    def __init__(
        self,
        db: Database,
        *,
        on_reload_needed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.on_reload_needed = on_reload_needed
        self._clock = clock
        self._lock = threading.Lock()
        self._bloom: Bloom | None = None
        self._capacity = 0
        self._count = 0
        #: Keys added while a load runs (the load may not see them).
        self._pending: set[str] | None = None
        self._generation = 0
        self._ready = threading.Event()
        self._not_before = 0.0

    @property
    def ready(self) -> bool:
        return self._bloom is not None

    def wait_ready(self, timeout: float) -> bool:
        """Block until a load finished (tests and tools)."""
        return self._ready.wait(timeout)

    def may_exist(self, key: str) -> bool | None:
        """False: no upload stored ``key``; True: one may have; None: not
        known now (not loaded yet): ask storage."""
        bloom = self._bloom
        if bloom is None:
            return None
        try:
            return key in bloom
        except RuntimeError:  # being updated by another thread this instant
            return None

    def add(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        with self._lock:
            if self._pending is not None:
                self._pending.update(keys)
            if self._bloom is not None:
                self._bloom.update(keys)
                self._count += len(keys)
                full = self._count > self._capacity
            else:
                full = False
        if full:
            self.on_reload_needed()

    def forget_all(self) -> None:
        """Stop answering from the filter until the next :meth:`reload`
        finished (the log cannot be read: keys may be missing)."""
        with self._lock:
            self._bloom = None
            self._pending = None
            self._generation += 1
            self._ready.clear()

    def reload(self) -> None:
        """Forget the filter and load it again in a background thread. The
        caller has just read the invalidation log's position, so every key
        stored after the load's reads is logged past it (and added)."""
        with self._lock:
            self._bloom = None
            self._ready.clear()
            self._pending = set()
            self._generation += 1
            generation = self._generation
        thread = threading.Thread(
            target=self._load, args=(generation,), name="stored-keys-loader", daemon=True
        )
        thread.start()

    def _load(self, generation: int) -> None:
        wait = self._not_before - self._clock()
        if wait > 0:
            time.sleep(wait)
        started = time.perf_counter()
        try:
            count = int(self.db.fetchval("SELECT COUNT(*) FROM stored_keys") or 0)
            capacity = max(MIN_CAPACITY, 2 * count)
            bloom = Bloom(capacity, FALSE_POSITIVE_RATE)
            loaded = 0
            for key in iterate(self.db):
                bloom.add(key)
                loaded += 1
            logged = logged_keys(self.db)
            bloom.update(logged)
            loaded += len(logged)
        except DatabaseError as exc:
            logger.warning("cannot load the stored keys (%s); downloads ask storage meanwhile", exc)
            metrics.incr("stored_keys.load_error")
            self._not_before = self._clock() + RETRY_AFTER
            self.on_reload_needed()
            return
        with self._lock:
            if generation != self._generation:
                return  # a newer reload started meanwhile
            pending = self._pending or set()
            bloom.update(pending)
            self._pending = None
            self._bloom = bloom
            self._capacity = capacity
            self._count = loaded + len(pending)
            self._ready.set()
        metrics.timing("stored_keys.load", value=(time.perf_counter() - started) * 1000)
        metrics.gauge("stored_keys.count", value=loaded)
        logger.info("loaded %d stored keys in %.2fs", loaded, time.perf_counter() - started)
