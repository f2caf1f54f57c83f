# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Cached lookups: does a symbol key exist (and in which backend), and which
uploaded file matches a debug-file/debug-id or code-file/code-id pair.

Hits stay cached ``positive_ttl`` seconds, misses ``negative_ttl`` seconds.
Whether misses are cached depends on capabilities, not classes: with a shared
cache (``cache.shared``, Redis) always; with a per-process cache only where an
existence check is expensive (a storage without ``cheap_exists``) and never for
code-id lookups (an indexed query is as cheap as the cache). In front of a
shared cache each worker also keeps hits, never misses, in memory for
``local_hit_ttl`` seconds.

Writers never touch the caches themselves: the symbol writer
(:mod:`tecken_symbols.upload.writer`) calls :meth:`Lookups.forget` (or
:meth:`Lookups.log_forget` inside its transaction), which drops the keys here,
deletes them from a shared cache and appends them to the invalidation log
(:mod:`tecken_symbols.invalidations`) that every other worker reads before it
answers from memory. Cache failures never fail a lookup (see
:mod:`tecken_shared.cache`).

Unless ``ask_storage_for_unknown_keys``, a key no upload stored (absent from
the worker's filter of recorded keys, :mod:`tecken_symbols.stored_keys`) is
not found without asking storage: the database is authoritative, so a
never-seen missing key costs what a cached answer does. Other workers' filters
learn a stored key through the log (within ``poll_interval``); with a shared
cache the writer also leaves a "stored" marker there for a minute, which a
filter miss checks (one Redis read), so an upload is found at once on every
node."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

import markus

from tecken_shared.breakpad import SymHeader
from tecken_shared.cache import Cache, LocalCache
from tecken_shared.storage import ObjectInfo
from tecken_symbols import identities, stored_keys
from tecken_symbols.db import Cursorish, Database, DatabaseError
from tecken_symbols.invalidations import InvalidationLog
from tecken_symbols.storages import Backend, Storages
from tecken_symbols.stored_keys import KnownKeys, storage_keys

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

MISS = "-"
#: With a shared cache: "stored a moment ago" markers, set by writers, so a
#: key is found at once on every node, before its workers' filters have it.
STORED_PREFIX = "k:"


@dataclass(frozen=True)
class Hit:
    backend: Backend
    last_modified: float | None  # epoch seconds

    def age_days(self) -> float | None:
        if self.last_modified is None:
            return None
        return max(0.0, (time.time() - self.last_modified) / 86400)


@dataclass(frozen=True)
class SymInfo:
    debug_filename: str
    debug_id: str
    code_file: str | None
    code_id: str | None
    generator: str | None
    try_symbols: bool


class Lookups:
    def __init__(
        self,
        storages: Storages,
        cache: Cache,
        db: Database,
        *,
        positive_ttl: float = 3600,
        negative_ttl: float = 30,
        syminfo_ttl: float = 600,
        syminfo_negative_ttl: float = 60,
        local_hit_ttl: float = 60,
        local_max_entries: int = 100_000,
        poll_interval: float = 1.0,
        ask_storage_for_unknown_keys: bool = True,
    ) -> None:
        self.storages = storages
        self.cache = cache
        self.db = db
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.syminfo_ttl = syminfo_ttl
        self.syminfo_negative_ttl = syminfo_negative_ttl
        #: Whether every worker sees the same cache (Redis): writers delete
        #: its keys directly, and misses can be cached everywhere.
        self.shared = cache.shared
        self._cache_misses = {
            try_symbols: self.shared
            or any(not b.storage.cheap_exists for b in storages.for_download(try_symbols))
            for try_symbols in (False, True)
        }
        #: In front of a shared cache: a per-worker cache of found keys, so a
        #: hot key costs no Redis round trip. Only hits: a miss kept here
        #: would hide another worker's upload until the next log poll.
        self.local_hit_ttl = min(local_hit_ttl, positive_ttl)
        self.local: LocalCache | None = (
            LocalCache(local_max_entries) if self.shared and self.local_hit_ttl > 0 else None
        )
        #: The cache this process holds in memory (what the log invalidates);
        #: a cache that is not shared lives in this process.
        self._memory: LocalCache | None = self.local if self.shared else cast(LocalCache, cache)
        self.invalidations = InvalidationLog(db, poll_interval=poll_interval)
        #: Called when a storage (not the cache) finds a key; False means the
        #: object is not to be served (the v2 check of direct uploads,
        #: :meth:`tecken_symbols.upload.direct.DirectUploads.on_found`).
        self.on_found: Callable[[str, Backend, ObjectInfo], bool] | None = None
        #: The recorded keys, when the database is authoritative.
        self.known_keys: KnownKeys | None = (
            None
            if ask_storage_for_unknown_keys
            else KnownKeys(db, on_reload_needed=self.invalidations.restart)
        )
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._log_readable = False

    def caches_misses(self, try_symbols: bool) -> bool:
        """Whether a "not found" answer is cached (see the module doc)."""
        return self._cache_misses[try_symbols]

    # -- invalidation ------------------------------------------------------

    def _in_memory(self) -> Cache | None:
        """The in-process layer, after applying what other processes logged;
        None when it must not be used now (the log cannot be read)."""
        memory = self._memory
        if memory is None and self.known_keys is None:
            return None
        usable, changes = self.invalidations.poll()
        if changes is not None and (changes.everything or changes.keys):
            with self._generation_lock:
                self._generation += 1
            known = self.known_keys
            if changes.everything:
                if known is not None and usable:
                    # Just after the log's position was read: see KnownKeys.reload.
                    known.reload()
                elif known is not None:
                    known.forget_all()
                if memory is not None:
                    memory.clear()
            else:
                if known is not None:
                    known.add(storage_keys(changes.keys))
                if memory is not None:
                    memory.delete(*changes.keys)
                if self.shared:
                    # Again in the shared cache: heals a delete the writer lost
                    # (Redis timed out) and a hit a slow lookup stored after it.
                    for i in range(0, len(changes.keys), 1000):
                        self.cache.delete(*changes.keys[i : i + 1000])
        self._log_readable = usable
        return memory if usable else None

    def unknown(self, key: str) -> bool:
        """Whether no upload ever stored ``key`` (so it is not found), as far
        as this worker can tell now; False when it cannot (the database is
        not authoritative, the filter is not loaded, the log is unreadable).
        Call it after a poll (find does)."""
        known = self.known_keys
        return known is not None and self._log_readable and known.may_exist(key) is False

    @staticmethod
    def _cache_key(key: str, try_symbols: bool) -> str:
        return ("t:" if try_symbols else "r:") + key

    def cache_keys(self, key: str | None = None, header: SymHeader | None = None) -> list[str]:
        """Every cache key an object write or delete of ``key`` (with the
        .sym ``header`` it holds) makes stale."""
        keys = []
        if key:
            keys += [self._cache_key(key, False), self._cache_key(key, True)]
        if header is not None:
            for some_file, some_id in (
                (header.debug_filename, header.debug_id),
                (header.code_file, header.code_id),
            ):
                if some_file and some_id:
                    some_id = some_id.upper()
                    keys += [
                        self._syminfo_key(some_file, some_id, False),
                        self._syminfo_key(some_file, some_id, True),
                    ]
        return keys

    def log_forget(self, tx: Cursorish, keys: Iterable[str]) -> None:
        """Inside the writer's transaction: log ``keys`` for every other
        worker. Call :meth:`drop` with the same keys after the commit."""
        self.invalidations.append(tx, list(keys))

    def drop(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` from this process's memory and the shared cache."""
        keys = list(keys)
        if not keys:
            return
        with self._generation_lock:
            self._generation += 1
        stored = storage_keys(keys)
        if self.known_keys is not None:
            self.known_keys.add(stored)
        if self.shared and stored:
            ttl = max(60.0, 10 * self.invalidations.poll_interval)
            for key in dict.fromkeys(stored):
                self.cache.set(STORED_PREFIX + key, "1", ttl)
        self.cache.delete(*keys)
        if self.local is not None:
            self.local.delete(*keys)

    def forget(
        self, key: str | None = None, header: SymHeader | None = None, *, stored: bool = False
    ) -> None:
        """Forget every cached answer about object ``key`` (and the syminfo
        pairs of its ``header``), in every worker: here and in the shared cache
        at once, elsewhere through the invalidation log. Call it after the
        object was written or deleted. A database failure is logged: the other
        workers then stop using their in-process caches until they can read
        the log again. ``stored``: ``key`` was stored (record it as such,
        :mod:`tecken_symbols.stored_keys`)."""
        keys = self.cache_keys(key, header)
        try:
            with self.db.transaction() as tx:
                if stored and key:
                    stored_keys.add(tx, [key])
                self.log_forget(tx, keys)
        except DatabaseError as exc:
            metrics.incr("cache_invalidation.write_error")
            logger.error("cannot log the cache invalidation of %s: %s", keys, exc)
        finally:
            self.drop(keys)

    # -- existence -------------------------------------------------------

    def find(self, key: str, try_symbols: bool, refresh: bool = False) -> Hit | None:
        """The first backend holding ``key`` (regular first), or None.
        ``refresh`` skips the cached answer (and replaces it).
        Raises StorageError when a backend fails and no cached answer exists."""
        ckey = self._cache_key(key, try_symbols)
        # The caches this lookup may use: a shared cache always, the
        # in-process layer only while the invalidation log can be read.
        memory = self._in_memory()
        if self.unknown(key) and not (
            self.shared and self.cache.get(STORED_PREFIX + key) is not None
        ):
            metrics.incr("symboldownloader.cache", tags=["result:unknown_key"])
            return None
        local = self.local if memory is not None else None
        cache = self.cache if self.shared or memory is not None else None
        generation = self._generation
        cached = None
        if not refresh:
            cached = local.get(ckey) if local is not None else None
            if cached is None and cache is not None:
                cached = cache.get(ckey)
                if cached is not None and cached != MISS and local is not None:
                    local.set(ckey, cached, self.local_hit_ttl)
        if cached is not None:
            if cached == MISS:
                metrics.incr("symboldownloader.cache", tags=["result:miss_cached"])
                return None
            label, _, modified = cached.partition("|")
            backend = self.storages.by_label(label)
            if backend is not None:
                metrics.incr("symboldownloader.cache", tags=["result:hit_cached"])
                return Hit(backend, float(modified) if modified else None)
        metrics.incr("symboldownloader.cache", tags=["result:uncached"])
        hit = None
        for backend in self.storages.for_download(try_symbols):
            with metrics.timer("symboldownloader_exists", tags=[f"storage:{backend.label}"]):
                info = backend.storage.metadata(key)
            if info is not None and self.on_found is not None:
                if not self.on_found(key, backend, info):
                    return None
            if info is not None:
                modified = info.last_modified.timestamp() if info.last_modified else None
                hit = Hit(backend, modified)
                break
        if generation != self._generation:
            # Something was dropped while we asked the storage: this answer
            # may predate that write, so it is not kept.
            return hit
        if hit is not None:
            modified = hit.last_modified
            value = f"{hit.backend.label}|{'' if modified is None else modified}"
            if cache is not None:
                cache.set(ckey, value, self.positive_ttl)
            if local is not None:
                local.set(ckey, value, self.local_hit_ttl)
        elif cache is not None and self._cache_misses[try_symbols]:
            cache.set(ckey, MISS, self.negative_ttl)
        return hit

    # -- code-file/code-id and debug-file/debug-id ------------------------

    @staticmethod
    def _syminfo_key(some_file: str, some_id: str, try_symbols: bool) -> str:
        return f"syminfo:{'t' if try_symbols else 'r'}:{some_file}//{some_id}"

    def syminfo(
        self, some_file: str, some_id: str, try_symbols: bool, refresh: bool = False
    ) -> SymInfo | None:
        """The newest uploaded file whose (debug_filename, debug_id) or
        (code_file, code_id) is (some_file, some_id). Regular requests only see
        regular uploads; try requests see both and prefer regular ones."""
        ckey = self._syminfo_key(some_file, some_id, try_symbols)
        cache = self.cache if self.shared or self._in_memory() is not None else None
        generation = self._generation
        if not refresh and cache is not None:
            cached = cache.get(ckey)
            if cached is not None:
                metrics.incr("syminfo.lookup.cached", tags=["result:true"])
                return None if cached == MISS else SymInfo(**json.loads(cached))
        metrics.incr("syminfo.lookup.cached", tags=["result:false"])
        with metrics.timer("syminfo.lookup.timing"):
            info = self._syminfo_from_db(some_file, some_id, try_symbols)
        if cache is None or generation != self._generation:
            return info
        if info is None:
            if self.shared:
                cache.set(ckey, MISS, self.syminfo_negative_ttl)
        else:
            cache.set(ckey, json.dumps(info.__dict__), self.syminfo_ttl)
        return info

    def _syminfo_from_db(self, some_file: str, some_id: str, try_symbols: bool) -> SymInfo | None:
        sql = (
            "SELECT debug_filename, debug_id, code_file, code_id, generator, try_symbols "
            "FROM file_uploads WHERE ((debug_filename = ? AND debug_id = ?) "
            "OR (code_file = ? AND code_id = ?)) AND debug_filename IS NOT NULL "
            "AND debug_id IS NOT NULL"
        )
        params: list = [some_file, some_id, some_file, some_id]
        if not try_symbols:
            sql += " AND try_symbols = ?"
            params.append(False)
        sql += " ORDER BY try_symbols, id DESC LIMIT 1"
        row = self.db.fetchone(sql, params)
        if row is None:
            return None
        return SymInfo(
            debug_filename=row["debug_filename"],
            debug_id=row["debug_id"],
            code_file=row["code_file"],
            code_id=row["code_id"],
            generator=row["generator"],
            try_symbols=bool(row["try_symbols"]),
        )

    # -- the identity index (symsrv, SSQP, debuginfod keys) -----------------

    @staticmethod
    def identity_cache_key(lookup_key: str) -> str:
        return f"ident:{lookup_key}"

    def identity(self, lookup_key: str, refresh: bool = False) -> identities.IndexEntry | None:
        """The stored object answering a protocol key (lower case), from the
        identity index. Found entries stay cached ``syminfo_ttl`` seconds,
        misses ``negative_ttl`` (the writer invalidates both, in every worker,
        when it records an object's identities)."""
        ckey = self.identity_cache_key(lookup_key)
        cache = self.cache if self.shared or self._in_memory() is not None else None
        generation = self._generation
        if not refresh and cache is not None:
            cached = cache.get(ckey)
            if cached is not None:
                metrics.incr("identities.lookup", tags=["result:cached"])
                if cached == MISS:
                    return None
                return identities.IndexEntry(**json.loads(cached))
        metrics.incr("identities.lookup", tags=["result:uncached"])
        entry = identities.find(self.db, lookup_key)
        if cache is None or generation != self._generation:
            return entry
        if entry is None:
            cache.set(ckey, MISS, self.negative_ttl)
        else:
            cache.set(ckey, json.dumps(entry.__dict__), self.syminfo_ttl)
        return entry
