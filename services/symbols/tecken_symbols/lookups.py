# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Cached lookups: does a symbol key exist (and in which backend), and which
uploaded file matches a debug-file/debug-id or code-file/code-id pair.

The upload side MUST call, after it writes a key::

    ctx.lookups.invalidate(key)                       # existence, regular and try
    ctx.lookups.invalidate_syminfo(debug_filename, debug_id)
    ctx.lookups.invalidate_syminfo(code_file, code_id)  # when the .sym has them

Hits stay cached ``positive_ttl`` seconds, misses ``negative_ttl`` seconds.
In front of a shared cache (Redis) each worker keeps hits, never misses, in
memory too: a hit stays true after any upload, a miss would hide another
worker's upload from this one. With a per-process cache (``memory://``) an upload can only invalidate the
worker that handled it, so misses are then cached only where a lookup is
expensive (remote storage) and never for code-id lookups: a filesystem stat or
an indexed query is as cheap as the cache, and an upload shows up at once in
every worker.
Cache failures never fail a lookup (see :mod:`tecken_shared.cache`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import markus

from tecken_shared.cache import Cache, LocalCache
from tecken_shared.storage.filesystem import FilesystemStorage
from tecken_symbols.db import Database
from tecken_symbols.storages import Backend, Storages

metrics = markus.get_metrics("tecken")

MISS = "-"


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
    ) -> None:
        self.storages = storages
        self.cache = cache
        self.db = db
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.syminfo_ttl = syminfo_ttl
        self.syminfo_negative_ttl = syminfo_negative_ttl
        #: Whether every worker sees the same cache (Redis): then invalidation
        #: reaches all of them and misses can be cached everywhere.
        self.shared = not isinstance(cache, LocalCache)
        self._cache_misses = {
            try_symbols: self.shared
            or any(
                not isinstance(b.storage, FilesystemStorage)
                for b in storages.for_download(try_symbols)
            )
            for try_symbols in (False, True)
        }
        #: In front of a shared cache: a per-worker cache of found keys, so a
        #: hot key costs no Redis round trip. Only hits: they stay true (and
        #: the redirect target valid) whatever is uploaded, while a miss kept
        #: here could not be invalidated by another worker's upload.
        self.local_hit_ttl = min(local_hit_ttl, positive_ttl)
        self.local: LocalCache | None = (
            LocalCache(local_max_entries) if self.shared and self.local_hit_ttl > 0 else None
        )

    # -- existence -------------------------------------------------------

    @staticmethod
    def _cache_key(key: str, try_symbols: bool) -> str:
        return ("t:" if try_symbols else "r:") + key

    def find(self, key: str, try_symbols: bool, refresh: bool = False) -> Hit | None:
        """The first backend holding ``key`` (regular first), or None.
        ``refresh`` skips the cached answer (and replaces it).
        Raises StorageError when a backend fails and no cached answer exists."""
        ckey = self._cache_key(key, try_symbols)
        cached = None
        if not refresh:
            local = self.local
            cached = local.get(ckey) if local is not None else None
            if cached is None:
                cached = self.cache.get(ckey)
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
        for backend in self.storages.for_download(try_symbols):
            with metrics.timer("symboldownloader_exists", tags=[f"storage:{backend.label}"]):
                info = backend.storage.metadata(key)
            if info is not None:
                modified = info.last_modified.timestamp() if info.last_modified else None
                value = f"{backend.label}|{'' if modified is None else modified}"
                self.cache.set(ckey, value, self.positive_ttl)
                if self.local is not None:
                    self.local.set(ckey, value, self.local_hit_ttl)
                return Hit(backend, modified)
        if self._cache_misses[try_symbols]:
            self.cache.set(ckey, MISS, self.negative_ttl)
        return None

    def invalidate(self, key: str) -> None:
        """Forget cached existence answers for ``key`` (regular and try)."""
        keys = (self._cache_key(key, False), self._cache_key(key, True))
        self.cache.delete(*keys)
        if self.local is not None:
            self.local.delete(*keys)

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
        if not refresh:
            cached = self.cache.get(ckey)
            if cached is not None:
                metrics.incr("syminfo.lookup.cached", tags=["result:true"])
                return None if cached == MISS else SymInfo(**json.loads(cached))
        metrics.incr("syminfo.lookup.cached", tags=["result:false"])
        with metrics.timer("syminfo.lookup.timing"):
            info = self._syminfo_from_db(some_file, some_id, try_symbols)
        if info is None:
            if self.shared:
                self.cache.set(ckey, MISS, self.syminfo_negative_ttl)
        else:
            self.cache.set(ckey, json.dumps(info.__dict__), self.syminfo_ttl)
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

    def invalidate_syminfo(self, some_file: str | None, some_id: str | None) -> None:
        """Forget cached code/debug-info lookups of (some_file, some_id)."""
        if not some_file or not some_id:
            return
        some_id = some_id.upper()
        self.cache.delete(
            self._syminfo_key(some_file, some_id, False),
            self._syminfo_key(some_file, some_id, True),
        )
