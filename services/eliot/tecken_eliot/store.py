# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Where symbolication gets its symcaches: a per-worker LRU of opened
(memory-mapped) symcaches in front of the shared disk cache, in front of the
symbol servers. Cold modules are fetched in parallel. Below the memory tier
the path is ``DiskCache.get_or_compute``: this module gives it the disk tier
(``_load``) and the fetch tier (``_compute``: download, parse, store); each
module is computed by one process at a time (the disk cache's lock), and
everyone else waiting for it reads the result from disk."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path

import markus
import symbolic
from everett.manager import ConfigManager

from tecken_eliot.diskcache import CacheEntry, DiskCache
from tecken_eliot.downloader import SymbolDownloader
from tecken_eliot.frames import SymcacheFrames
from tecken_eliot.naming import cache_stem, module_key
from tecken_eliot.settings import StoreConfig, default_of, read_options
from tecken_eliot.shared_tier import SharedTier
from tecken_eliot.status import ModuleResult, ModuleStatus
from tecken_eliot.symfile import (
    MalformedSymbols,
    build_symcache,
    module_filename,
    normalize_debug_id,
    unpack,
)

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")


@dataclass
class Stats:
    """Per-request timings for the ``Debug`` block."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Modules looked up in the cache, one per distinct module (as Eliot counts).
    cache_count: int = 0
    cache_hits: int = 0
    cache_time: float = 0.0
    #: Reads of the disk cache (a miss reads it twice: before and after the lock).
    disk_reads: int = 0
    downloads: dict[str, float] = field(default_factory=dict)
    download_sizes: dict[str, int] = field(default_factory=dict)
    download_fail: dict[str, float] = field(default_factory=dict)
    parse: dict[str, float] = field(default_factory=dict)
    parse_fail: dict[str, float] = field(default_factory=dict)
    save: dict[str, float] = field(default_factory=dict)
    shared_tier: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, key: str, value: float) -> None:
        with self.lock:
            getattr(self, name)[key] = value


@dataclass
class _Open:
    entry: CacheEntry
    touched: float
    #: the symcache's memoised frames (they live as long as it stays open)
    frames: SymcacheFrames

    @property
    def weight(self) -> int:
        """The memory it holds: its mapping and its memo."""
        return self.entry.size + self.frames.size

    def found(self) -> ModuleResult:
        return ModuleResult(
            ModuleStatus.FOUND, self.entry.symcache, self.entry.filename, frames=self.frames
        )


class SymcacheStore:
    def __init__(
        self,
        disk: DiskCache,
        downloader: SymbolDownloader,
        *,
        max_open: int,
        max_open_size: int = default_of(StoreConfig, "open_symcaches_max_size"),
        fetch_threads: int,
        touch_interval: float,
        lock_timeout: float,
        fetch_deadline: float = default_of(StoreConfig, "fetch_deadline"),
        tier: SharedTier | None = None,
    ) -> None:
        self.disk = disk
        self.downloader = downloader
        #: most symcaches a worker keeps open, and most bytes (mappings and
        #: memos) they may hold together
        self.max_open = max_open
        self.max_open_size = max_open_size
        self.touch_interval = touch_interval
        self.lock_timeout = lock_timeout
        #: seconds one request may spend getting its cold modules
        self.fetch_deadline = fetch_deadline
        #: the symcache tier shared by every node, if configured
        self.tier = tier
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._mutex = threading.Lock()
        self._executor = ThreadPoolExecutor(max(1, fetch_threads), thread_name_prefix="fetch")

    @classmethod
    def from_config(cls, manager: ConfigManager) -> SymcacheStore:
        """The store as configured by :class:`~tecken_eliot.settings.StoreConfig`,
        over the configured disk cache and downloader."""
        options = read_options(manager, StoreConfig)
        return cls(
            DiskCache.from_config(manager),
            # One keep-alive connection per fetch thread, at least the default 10.
            SymbolDownloader.from_config(manager, pool_size=max(10, options["fetch_threads"])),
            max_open=options["open_symcaches"],
            max_open_size=options["open_symcaches_max_size"],
            fetch_threads=options["fetch_threads"],
            touch_interval=options["touch_interval"],
            lock_timeout=options["lock_timeout"],
            fetch_deadline=options["fetch_deadline"],
            tier=SharedTier.from_url(options["shared_cache_url"], options["shared_cache_queue"]),
        )

    # -- per-worker LRU ----------------------------------------------------

    def _warm(self, stem: str) -> _Open | None:
        with self._mutex:
            held = self._open.get(stem)
            if held is None:
                return None
            self._open.move_to_end(stem)
        if held.entry.path is None:
            return held  # held in this worker only (too big for the disk cache)
        try:
            st = os.stat(held.entry.path)
            # The size too: a file truncated in place would SIGBUS us on the
            # next lookup through the mapping.
            alive = (st.st_dev, st.st_ino) == held.entry.inode and st.st_size == held.entry.size
        except OSError:
            alive = False
        if not alive:
            # The cache manager evicted (or a worker replaced, or someone
            # truncated) the file: let go of our mapping and take the normal
            # path, which verifies the file and rebuilds it if need be.
            with self._mutex:
                self._open.pop(stem, None)
            return None
        now = time.monotonic()
        if now - held.touched >= self.touch_interval:
            held.touched = now
            self.disk.touch(held.entry.path)
        return held

    def _remember(self, stem: str, entry: CacheEntry) -> _Open:
        held = _Open(entry, time.monotonic(), SymcacheFrames(entry.symcache))
        with self._mutex:
            self._open[stem] = held
            self._open.move_to_end(stem)
        self.trim()
        return held

    def trim(self) -> None:
        """Let go of the least recently used symcaches until at most
        ``max_open`` are open and they hold at most ``max_open_size`` bytes
        (the most recent one stays, however big). A request in flight keeps
        the ones it uses alive."""
        with self._mutex:
            total = sum(held.weight for held in self._open.values())
            while len(self._open) > 1 and (
                len(self._open) > self.max_open or total > self.max_open_size
            ):
                _stem, held = self._open.popitem(last=False)
                total -= held.weight

    # -- lookups -----------------------------------------------------------

    def get_many(
        self,
        modules: Iterable[tuple[str, str]],
        stats: Stats | None = None,
        code_ids: Mapping[tuple[str, str], str] | None = None,
    ) -> dict[tuple[str, str], ModuleResult]:
        """A result for each distinct (debug_filename, debug_id); cold modules
        are fetched in parallel, for at most ``fetch_deadline`` seconds: a
        module not ready by then is an ERROR for this request (a fetch under
        way goes on, bounded by its own deadline, and fills the cache).
        ``code_ids`` gives the code id (ELF build id) of the modules that
        have one."""
        stats = stats or Stats()
        code_ids = code_ids or {}
        deadline = time.monotonic() + self.fetch_deadline
        results: dict[tuple[str, str], ModuleResult] = {}
        cold = []
        for module in dict.fromkeys(modules):
            held = self._warm(cache_stem(*module))
            if held is not None:
                stats.cache_count += 1
                stats.cache_hits += 1
                results[module] = held.found()
            else:
                cold.append(module)
        if len(cold) == 1:
            module = cold[0]
            results[module] = self.get(
                *module, stats=stats, deadline=deadline, code_id=code_ids.get(module)
            )
        elif cold:
            futures = {
                m: self._executor.submit(
                    self.get, *m, stats=stats, deadline=deadline, code_id=code_ids.get(m)
                )
                for m in cold
            }
            wait_futures(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
            for module, future in futures.items():
                if future.done():
                    results[module] = future.result()
                else:
                    future.cancel()  # not started yet: never will be
                    results[module] = ModuleResult(
                        ModuleStatus.ERROR,
                        detail="not fetched within the request's "
                        f"{self.fetch_deadline:g}s (ELIOT_FETCH_DEADLINE); try again later",
                    )
        return results

    def get(
        self,
        debug_filename: str,
        debug_id: str,
        stats: Stats | None = None,
        deadline: float | None = None,
        code_id: str | None = None,
    ) -> ModuleResult:
        """The module's result; ``deadline`` (a :func:`time.monotonic` time)
        bounds the wait for another process's fetch and our own download;
        ``code_id`` (the ELF build id), if known, lets the downloader ask
        debuginfod and SSQP routes for the module's debug file."""
        stats = stats or Stats()
        if deadline is None:
            deadline = time.monotonic() + self.fetch_deadline
        stem = cache_stem(debug_filename, debug_id)
        held = self._warm(stem)
        if held is not None:
            return held.found()
        try:
            normalized = normalize_debug_id(debug_id)
        except MalformedSymbols as exc:
            return ModuleResult(ModuleStatus.MALFORMED, detail=exc.detail)
        with stats.lock:
            stats.cache_count += 1
        return self.disk.get_or_compute(
            stem,
            load=lambda: self._load(stem, normalized, stats),
            compute=lambda: self._compute(
                debug_filename, debug_id, stem, normalized, stats, deadline, code_id
            ),
            lock_timeout=max(0.0, min(self.lock_timeout, deadline - time.monotonic())),
            recheck=lambda: self._recheck(debug_filename, debug_id, code_id),
        )

    def _recheck(self, debug_filename: str, debug_id: str, code_id: str | None = None) -> bool:
        """Whether a symbol server has a module remembered as missing now (HEAD
        requests: :meth:`SymbolDownloader.exists`)."""
        found = self.downloader.exists(debug_filename, debug_id, code_id=code_id)
        if found.status is ModuleStatus.ERROR:
            logger.warning(
                "recheck of missing module %s failed: %s",
                module_key(debug_filename, debug_id),
                "; ".join(found.errors),
            )
        return found.status is ModuleStatus.FOUND

    def _load(self, stem: str, normalized: str, stats: Stats) -> ModuleResult | None:
        """The disk tier: a verified symcache from the disk cache, kept open
        in this worker; None on a miss."""
        start = time.perf_counter()
        entry = self.disk.open_entry(stem, normalized)
        with stats.lock:
            stats.disk_reads += 1
            stats.cache_time += time.perf_counter() - start
            if entry is not None:
                stats.cache_hits += 1
        if entry is None:
            return None
        self.disk.touch(entry.path)
        return self._remember(stem, entry).found()

    def _compute(
        self,
        debug_filename: str,
        debug_id: str,
        stem: str,
        normalized: str,
        stats: Stats,
        deadline: float,
        code_id: str | None = None,
    ) -> ModuleResult:
        """The fetch tier: download the module's symbols (a sym file or a
        debug file, maybe in a container), build its symcache and store it
        (negative results are remembered by ``DiskCache.get_or_compute``;
        malformed ones are logged and counted here)."""
        key = module_key(debug_filename, debug_id)
        result = self._fetch_and_build(
            debug_filename, debug_id, stem, normalized, stats, deadline, code_id
        )
        if result.status is ModuleStatus.MALFORMED:
            logger.warning("module %s has malformed symbols: %s", key, result.detail)
        return result

    def _fetch_and_build(
        self,
        debug_filename: str,
        debug_id: str,
        stem: str,
        normalized: str,
        stats: Stats,
        deadline: float,
        code_id: str | None = None,
    ) -> ModuleResult:
        key = module_key(debug_filename, debug_id)
        tmps: list[Path] = []
        try:
            sym_tmp = self.disk.tmp_file(".sym")
            tmps.append(sym_tmp)
            symc_tmp = self.disk.tmp_file(".symc")
            tmps.append(symc_tmp)
            if self.tier is not None:
                found = self._from_tier(stem, normalized, symc_tmp, key, stats)
                if found is not None:
                    return found
            start = time.perf_counter()
            download = self.downloader.download(
                debug_filename, debug_id, sym_tmp, deadline, code_id=code_id
            )
            elapsed = time.perf_counter() - start
            if download.status is ModuleStatus.FOUND:
                stats.add("downloads", key, elapsed)
                stats.add("download_sizes", key, download.size)
            else:
                stats.add("download_fail", key, elapsed)
            if download.status is ModuleStatus.TOO_LARGE:
                metrics.incr("symbolicate.parse_sym_file.error", tags=["reason:too_large"])
                return ModuleResult(ModuleStatus.MALFORMED, detail="; ".join(download.errors))
            if download.status is ModuleStatus.MISSING:
                return ModuleResult(ModuleStatus.MISSING, detail="no symbol server has this module")
            if download.status is ModuleStatus.ERROR:
                # Not remembered: the next request tries again.
                return ModuleResult(ModuleStatus.ERROR, detail="; ".join(download.errors))
            start = time.perf_counter()
            try:
                unpacked_tmp = self.disk.tmp_file(".unpacked")
                tmps.append(unpacked_tmp)
                symbols = unpack(
                    sym_tmp,
                    unpacked_tmp,
                    max_size=self.downloader.max_debug_size,
                    max_line=self.downloader.max_line,
                )
                filename = module_filename(symbols, debug_filename)
                build_symcache(symbols, normalized, symc_tmp)
            except MalformedSymbols as exc:
                stats.add("parse_fail", key, time.perf_counter() - start)
                detail = exc.detail
                if download.format != "sym":
                    detail += f" (the {download.format} form)"
                return ModuleResult(ModuleStatus.MALFORMED, detail=detail)
            stats.add("parse", key, time.perf_counter() - start)
            for path in (sym_tmp, unpacked_tmp):
                with contextlib.suppress(OSError):
                    os.remove(path)
            # Mapped before it is placed: the mapping outlives a rename, an
            # eviction right after it, or the unlinking of a file the cache
            # could not store (then it serves this worker only, path None).
            if self.tier is not None:
                self.tier.publish(stem, symc_tmp, filename, normalized)
            return self._store_built(stem, symc_tmp, filename, normalized, key, stats)
        finally:
            for path in tmps:
                with contextlib.suppress(OSError):
                    os.remove(path)

    def _store_built(
        self,
        stem: str,
        symc_tmp: Path,
        filename: str,
        normalized: str,
        key: str,
        stats: Stats,
        symcache: symbolic.SymCache | None = None,
        crc32: int | None = None,
    ) -> ModuleResult:
        """Map a symcache just built (or fetched from the shared tier: then
        already mapped, its CRC-32 known) and place it in the disk cache."""
        # Mapped before it is placed: the mapping outlives a rename, an
        # eviction right after it, or the unlinking of a file the cache
        # could not store (then it serves this worker only, path None).
        if symcache is None:
            symcache = symbolic.SymCache.open(str(symc_tmp))
        st = symc_tmp.stat()
        start = time.perf_counter()
        stored = self.disk.write_entry(stem, symc_tmp, filename, normalized, crc32)
        stats.add("save", key, time.perf_counter() - start)
        entry = CacheEntry(symcache, filename, stored, (st.st_dev, st.st_ino), st.st_size)
        return self._remember(stem, entry).found()

    def _from_tier(
        self, stem: str, normalized: str, symc_tmp: Path, key: str, stats: Stats
    ) -> ModuleResult | None:
        """The shared tier's symcache of the module, verified and placed in the
        disk cache; None when the tier doesn't have a usable one."""
        assert self.tier is not None
        start = time.perf_counter()
        got = self.tier.fetch(stem, symc_tmp)
        if got is None:
            return None
        try:
            symcache = symbolic.SymCache.open(str(symc_tmp))
            if got.debug_id != normalized or symcache.debug_id != normalized:
                raise ValueError(f"symcache of {symcache.debug_id}, not {normalized}")
            if not symcache.is_latest_version:
                raise ValueError(f"symcache format {symcache.version} is outdated")
        except (ValueError, symbolic.SymbolicError) as exc:
            logger.warning("shared tier: unusable symcache for %s: %s", stem, exc)
            return None
        stats.add("shared_tier", key, time.perf_counter() - start)
        return self._store_built(
            stem, symc_tmp, got.filename or stem, normalized, key, stats, symcache, got.crc32
        )
