# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The disk-cache manager: one process per host, run beside the web workers
(honcho ``eliot-cache-manager``, console script ``tecken-eliot-cache-manager``).

It keeps the symcache disk cache under ``ELIOT_SYMBOLS_CACHE_MAX_SIZE`` by
evicting least-recently-used entries. It learns about new, replaced, used and
deleted files through inotify; "used" is the file's mtime, which web workers
bump (at most once per ``ELIOT_TOUCH_INTERVAL``) while they serve from it.
It evicts at start-up when over the limit, removes an entry that alone is
bigger than the limit instead of emptying the cache for it, rescans the tree
periodically and after an inotify queue overflow, and writes a heartbeat file
that the web app's ``/__heartbeat__`` checks.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import markus
from everett.manager import ConfigManager

from tecken_eliot.diskcache import SUFFIXES, DiskCache, lru_victims
from tecken_eliot.settings import (
    CACHE_MANAGER_OPTIONS,
    NAMESPACE,
    CacheManagerConfig,
    default_of,
    read_options,
    setup_eliot_process,
)
from tecken_shared.config import build_config_manager, log_options

logger = logging.getLogger("tecken_eliot.cache_manager")
metrics = markus.get_metrics("eliot")

#: Milliseconds one step waits for inotify events (a constant; tests use less).
POLL_MS = 1000

WATCH_FLAGS_NAMES = (
    "CREATE",
    "DELETE",
    "DELETE_SELF",
    "MODIFY",
    "CLOSE_WRITE",
    "ATTRIB",
    "MOVED_FROM",
    "MOVED_TO",
)


class CacheManager:
    def __init__(
        self,
        disk: DiskCache,
        *,
        heartbeat_interval: float = default_of(
            CacheManagerConfig, "cache_manager_heartbeat_interval"
        ),
        rescan_interval: float = default_of(CacheManagerConfig, "cache_manager_rescan_interval"),
        poll_ms: int = POLL_MS,
    ) -> None:
        self.disk = disk
        self.max_size = disk.max_size
        self.heartbeat_interval = heartbeat_interval
        self.rescan_interval = rescan_interval
        self.poll_ms = poll_ms
        self.lru: OrderedDict[str, int] = OrderedDict()
        self.total = 0
        self.stop_event = threading.Event()
        self.inotify = None
        self.watches: dict[int, Path] = {}
        self._last_beat = 0.0
        self._last_scan = 0.0
        self._dirty = True
        #: entries found by walking a new directory, until their size is stable
        self.pending: dict[str, tuple[int | None, float]] = {}

    @classmethod
    def from_config(cls, manager: ConfigManager, poll_ms: int = POLL_MS) -> CacheManager:
        """The manager as configured by :class:`~tecken_eliot.settings.CacheManagerConfig`,
        over the configured disk cache."""
        options = read_options(manager, CacheManagerConfig)
        return cls(
            DiskCache.from_config(manager),
            heartbeat_interval=options["cache_manager_heartbeat_interval"],
            rescan_interval=options["cache_manager_rescan_interval"],
            poll_ms=poll_ms,
        )

    # -- bookkeeping -------------------------------------------------------

    def _stem_of(self, path: Path) -> str:
        root, suffix = os.path.splitext(str(path))
        if suffix in SUFFIXES and path.parent != self.disk.cache_dir:
            return os.path.relpath(root, self.disk.cache_dir)
        return str(path)

    def _stem_size(self, stem: str) -> int | None:
        """Bytes on disk for an entry, None when none of its files exist."""
        return self.disk.usage(stem)

    def _set(self, stem: str, size: int | None, used: bool = False) -> None:
        """Record an entry's size (None: it is gone); ``used`` makes it the
        most recently used."""
        old = self.lru.get(stem)
        if old is not None:
            self.total -= old
        if size is None:
            self.lru.pop(stem, None)
        else:
            self.lru[stem] = size
            self.total += size
            if used:
                self.lru.move_to_end(stem)
        self._dirty = True

    def rescan(self) -> None:
        """Delete expired negative entries and empty directories, rebuild the
        LRU from the tree (oldest mtime first) and evict."""
        purged = self.disk.purge()
        if purged:
            metrics.incr("diskcache.expired", value=purged)
        entries = self.disk.scan()
        self.lru = OrderedDict(
            (stem, size) for stem, (size, _used) in sorted(entries.items(), key=lambda kv: kv[1][1])
        )
        self.total = sum(self.lru.values())
        self._last_scan = time.monotonic()
        self._dirty = True
        logger.info(
            "cache %s: %d entries, %s bytes (max %s)",
            self.disk.cache_dir,
            len(self.lru),
            f"{self.total:,}",
            f"{self.max_size:,}",
        )
        self.make_room()

    def make_room(self, protect: str = "") -> int:
        """Evict least-recently-used entries until the cache fits, by the
        policy of :func:`~tecken_eliot.diskcache.lru_victims` that workers use
        too: an entry that alone is larger than the limit is evicted itself
        (it would never fit), never at the cost of the rest of the cache; when
        the next victim is still being written (``pending``), eviction waits
        for it to settle."""
        victims = lru_victims(
            self.lru.items(), self.total, self.max_size, keep=protect, busy=self.pending
        )
        for stem in victims:
            self._evict(stem)
        return len(victims)

    def _evict(self, stem: str) -> None:
        size = self.lru.pop(stem, 0)
        self.total -= size
        self.disk.evict(stem)
        metrics.incr("diskcache.evict")
        logger.debug("evicted %s (%d bytes)", stem, size)
        self._dirty = True

    # -- inotify -----------------------------------------------------------

    def _watch_tree(self, top: Path) -> None:
        from inotify_simple import flags

        mask = 0
        for name in WATCH_FLAGS_NAMES:
            mask |= getattr(flags, name)
        # Each directory is watched before it is listed, so a subdirectory
        # created meanwhile is either listed here or reported by an event.
        todo = [top]
        while todo:
            directory = todo.pop()
            try:
                wd = self.inotify.add_watch(directory, mask)  # type: ignore[union-attr]
                self.watches[wd] = directory
                with os.scandir(directory) as entries:
                    todo += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
            except OSError as exc:
                logger.warning("cannot watch %s: %s", directory, exc)

    def _handle(self, event) -> None:  # type: ignore[no-untyped-def]
        from inotify_simple import flags

        if event.mask & flags.Q_OVERFLOW:
            logger.warning("inotify queue overflowed; rescanning")
            self.rescan()
            return
        directory = self.watches.get(event.wd)
        if event.mask & (flags.IGNORED | flags.DELETE_SELF):
            if self.watches.pop(event.wd, None) == self.disk.cache_dir:
                # Someone deleted the whole cache: watch the new one.
                logger.warning("%s was deleted; recreating and rescanning", directory)
                self.disk.cache_dir.mkdir(parents=True, exist_ok=True)
                self._watch_tree(self.disk.cache_dir)
                self.rescan()
            return
        if directory is None or not event.name:
            return
        path = directory / event.name
        if event.mask & flags.ISDIR:
            if event.mask & (flags.CREATE | flags.MOVED_TO):
                self._watch_tree(path)
                # Files may have landed before the watch existed. They may still
                # be being written too: room is made once their size is stable.
                for dirpath, _d, filenames in os.walk(path):
                    for name in filenames:
                        stem = self._stem_of(Path(dirpath) / name)
                        size = self._stem_size(stem)
                        self._set(stem, size, used=True)
                        self.pending[stem] = (size, time.monotonic())
            return
        stem = self._stem_of(path)
        if event.mask & flags.ATTRIB and stem in self.lru:
            self.lru.move_to_end(stem)  # a worker marked it used
            return
        size = self._stem_size(stem)
        if event.mask & (flags.MOVED_TO | flags.CLOSE_WRITE):
            self.pending.pop(stem, None)
            # A complete file: renamed into place (how workers write) or
            # closed after writing in place.
            self._set(stem, size, used=True)
            self.make_room(protect=stem)
        elif event.mask & (flags.CREATE | flags.MODIFY):
            # Still being written: track its size, make room once complete.
            if stem in self.lru or size is not None:
                self._set(stem, size, used=bool(event.mask & flags.CREATE))
        elif event.mask & (flags.DELETE | flags.MOVED_FROM):
            if stem in self.lru:
                self._set(stem, size)

    def _settle_pending(self, now: float) -> None:
        for stem, (size, seen) in list(self.pending.items()):
            if now - seen < self.poll_ms / 1000:
                continue
            current = self._stem_size(stem)
            if current != size:
                self._set(stem, current)
                self.pending[stem] = (current, now)
                continue
            del self.pending[stem]
            # No protection: it was marked used when its directory was found,
            # and it may itself be the least recently used entry by now.
            self.make_room()

    # -- main loop ---------------------------------------------------------

    def heartbeat(self) -> None:
        data = {
            "time": time.time(),
            "pid": os.getpid(),
            "usage": self.total,
            "entries": len(self.lru),
            "max_size": self.max_size,
        }
        try:
            tmp = self.disk.tmp_file(".heartbeat")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.disk.heartbeat_path())
        except OSError as exc:
            logger.error("cannot write the heartbeat file: %s", exc)
        self._last_beat = time.monotonic()

    def _gauges(self) -> None:
        metrics.gauge("diskcache.usage", value=self.total)
        metrics.gauge("diskcache.entries", value=len(self.lru))
        self._dirty = False

    def start(self) -> None:
        from inotify_simple import INotify

        for directory in (self.disk.cache_dir, self.disk.tmp_dir, self.disk.locks_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.inotify = INotify()
        self._watch_tree(self.disk.cache_dir)
        self.rescan()
        self._gauges()
        self.heartbeat()

    def step(self) -> None:
        """Handle one batch of events (waiting up to ``poll_ms``), then the
        periodic chores. Errors are logged and counted; the loop goes on."""
        try:
            events = self.inotify.read(timeout=self.poll_ms)  # type: ignore[union-attr]
            for event in events:
                try:
                    self._handle(event)
                except Exception:
                    logger.exception("error handling %s", event)
                    metrics.incr("cache_manager.errors")
            now = time.monotonic()
            self._settle_pending(now)
            if now - self._last_scan >= self.rescan_interval:
                self.rescan()
            if self._dirty:
                self._gauges()
            if now - self._last_beat >= self.heartbeat_interval:
                self.heartbeat()
        except Exception:
            logger.exception("error in the cache manager loop")
            metrics.incr("cache_manager.errors")
            time.sleep(min(1.0, self.poll_ms / 1000))

    def run(self) -> None:
        self.start()
        while not self.stop_event.is_set():
            self.step()
        self.close()

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None


def build(manager: ConfigManager, poll_ms: int = POLL_MS) -> CacheManager:
    log_options(logger, manager, NAMESPACE, CACHE_MANAGER_OPTIONS)
    return CacheManager.from_config(manager, poll_ms=poll_ms)


def main() -> int:
    manager = build_config_manager()
    setup_eliot_process(manager, "cachemanager")
    cache_manager = build(manager)

    def stop(signum: int, frame: object) -> None:
        logger.info("cache manager stopping (signal %d)", signum)
        cache_manager.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("cache manager watching %s", cache_manager.disk.cache_dir)
    cache_manager.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
