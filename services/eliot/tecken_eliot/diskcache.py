# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The symcache disk cache shared by every worker on a host.

Layout under ``ELIOT_SYMBOLS_CACHE_DIR``::

    cache/<name>/<ID>.symc       the symcache itself (memory-mapped by workers)
    cache/<name>/<ID>.meta       JSON: module filename, debug id, size, crc32
    cache/<name>/<ID>.missing    negative entry: every symbol server said 404
                                 (JSON: detail, created, last recheck)
    cache/<name>/<ID>.malformed  negative entry: the sym file could not be used
    tmp/                         files being written (renamed into cache/)
    locks/<n>.lock               flock()s that make one process fetch a module
    cache-manager.json           the cache manager's heartbeat

``<name>/<ID>`` is :func:`tecken_eliot.naming.cache_stem`, an injective
encoding. Every write goes to ``tmp/`` and is renamed into place, so readers
never see half a file; anything that still does not verify on open (size,
checksum, symbolic's own checks, debug id) is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markus
import symbolic
from everett.manager import ConfigManager

from tecken_eliot.settings import CacheConfig, StoreConfig, default_of, read_options
from tecken_eliot.status import ModuleResult, ModuleStatus
from tecken_shared.cache import Cache, cache_from_url

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

SUFFIXES = (".symc", ".meta", ".missing", ".malformed")
NEGATIVE_SUFFIXES = (".missing", ".malformed")
#: What each entry is charged for the directory it lives in (one block): an
#: upper bound of a directory's share, since empty directories are removed.
DIRECTORY_CHARGE = 4096
LOCK_STRIPES = 4096
HEARTBEAT_FILE = "cache-manager.json"
#: How old a cache-manager heartbeat may be for its usage figure to be trusted.
HEARTBEAT_TRUST_SECONDS = 15.0


def lru_victims(
    lru: Iterable[tuple[str, int]],
    total: int,
    max_size: int,
    *,
    needed: int = 0,
    keep: str = "",
    busy: Container[str] = (),
) -> list[str]:
    """The one eviction policy, used by web workers (:meth:`DiskCache.make_room`)
    and by the cache manager: which entries to evict, in order, so that
    ``needed`` more bytes fit under ``max_size``.

    ``lru`` is ``(stem, bytes)`` least recently used first; ``total`` their
    sum. Any entry that alone is larger than ``max_size`` goes first (it would
    never fit, and must not cost the rest of the cache), ``keep`` included;
    then entries from the least recently used on, never ``keep``. The choice
    stops at an entry in ``busy`` (still being written)."""
    entries = list(lru)
    victims: dict[str, None] = {}  # ordered, with fast membership
    if total + needed <= max_size:
        return []
    for stem, size in entries:
        if size > max_size:
            logger.warning("entry %s is larger than the whole cache; evicting it", stem)
            victims[stem] = None
            total -= size
    for stem, size in entries:
        if total + needed <= max_size:
            break
        if stem == keep or stem in victims:
            continue
        if stem in busy:
            break
        victims[stem] = None
        total -= size
    return list(victims)


def file_usage(st: os.stat_result) -> int:
    """Bytes a file takes on disk: its allocated blocks (a 60-byte negative
    entry takes a whole block), at least its size."""
    return max(st.st_blocks * 512, st.st_size)


def _crc32_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


@dataclass
class CacheEntry:
    """An opened, verified cache entry."""

    symcache: symbolic.SymCache
    filename: str
    #: None for a symcache held only in memory (unlinked temp file)
    path: Path | None
    inode: tuple[int, int]
    size: int


class DiskCache:
    def __init__(
        self,
        root: str | Path,
        *,
        max_size: int = default_of(CacheConfig, "symbols_cache_max_size"),
        missing_ttl: float = default_of(CacheConfig, "missing_symbols_ttl"),
        malformed_ttl: float = default_of(CacheConfig, "malformed_symbols_ttl"),
        verify_checksums: bool = default_of(CacheConfig, "verify_cache_checksums"),
        recheck_interval: float = default_of(CacheConfig, "missing_symbols_recheck"),
        shared_negatives: Cache | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.cache_dir = self.root / "cache"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        self.max_size = max_size
        self.missing_ttl = missing_ttl
        self.malformed_ttl = malformed_ttl
        self.verify_checksums = verify_checksums
        #: seconds between two rechecks of a module remembered as missing (0: never)
        self.recheck_interval = recheck_interval
        #: Negative entries shared by every node (Redis), with their TTLs.
        self.shared_negatives = shared_negatives
        for directory in (self.cache_dir, self.tmp_dir, self.locks_dir):
            directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(cls, manager: ConfigManager) -> DiskCache:
        """The cache as configured by :class:`~tecken_eliot.settings.CacheConfig`."""
        options = read_options(manager, CacheConfig)
        return cls(
            options["symbols_cache_dir"],
            max_size=options["symbols_cache_max_size"],
            missing_ttl=options["missing_symbols_ttl"],
            malformed_ttl=options["malformed_symbols_ttl"],
            verify_checksums=options["verify_cache_checksums"],
            recheck_interval=options["missing_symbols_recheck"],
            shared_negatives=cache_from_url(
                options["shared_negative_cache_url"],
                prefix=options["shared_negative_cache_prefix"],
            )
            if options["shared_negative_cache_url"]
            else None,
        )

    # -- paths -------------------------------------------------------------

    def path(self, stem: str, suffix: str) -> Path:
        return self.cache_dir / (stem + suffix)

    def tmp_file(self, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, suffix=suffix)
        os.close(fd)
        return Path(name)

    def remove_entry(self, stem: str, suffixes: tuple[str, ...] = SUFFIXES) -> None:
        for suffix in suffixes:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path(stem, suffix))
        self._remove_dir_if_empty(self.path(stem, "").parent)

    def _remove_dir_if_empty(self, directory: Path) -> None:
        """Remove a per-module directory once its last entry is gone (a
        worker placing a file there meanwhile recreates it: see ``_place``)."""
        if directory != self.cache_dir and self.cache_dir in directory.parents:
            with contextlib.suppress(OSError):  # not empty, or already gone
                os.rmdir(directory)

    def usage(self, stem: str) -> int | None:
        """Bytes an entry (or a stray file, ``stem`` an absolute path) takes
        on disk, its directory's charge included; None when it has no file."""
        paths = [Path(stem)] if os.path.isabs(stem) else [self.path(stem, s) for s in SUFFIXES]
        size, seen = 0, False
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                size += file_usage(os.stat(path))
                seen = True
        if not seen:
            return None
        return size if os.path.isabs(stem) else size + DIRECTORY_CHARGE

    # -- reads -------------------------------------------------------------

    def open_entry(self, stem: str, normalized_debug_id: str) -> CacheEntry | None:
        """The verified entry, or None on a miss. A file that fails any check is
        deleted (so the caller rebuilds it) and counted as ``result:error``."""
        start = time.perf_counter()
        symc = self.path(stem, ".symc")
        result = "miss"
        try:
            st = os.stat(symc)
        except FileNotFoundError:
            entry = None
        else:
            try:
                entry = self._verify(stem, symc, st, normalized_debug_id)
                result = "hit"
            except FileNotFoundError as exc:
                entry = None
                if symc.exists():  # a symcache without its .meta: half an entry
                    logger.warning("cache entry %s is incomplete (%s); deleting it", stem, exc)
                    self.remove_entry(stem, (".symc", ".meta"))
                    result = "error"
                # else: evicted while we looked
            except (OSError, ValueError, KeyError, TypeError, symbolic.SymbolicError) as exc:
                logger.warning("cache entry %s is corrupt (%s); deleting it", stem, exc)
                self.remove_entry(stem, (".symc", ".meta"))
                entry = None
                result = "error"
        metrics.histogram(
            "diskcache.get", value=(time.perf_counter() - start) * 1000, tags=[f"result:{result}"]
        )
        return entry

    def _verify(
        self, stem: str, symc: Path, st: os.stat_result, normalized_debug_id: str
    ) -> CacheEntry:
        meta = json.loads(self.path(stem, ".meta").read_text())
        if meta["size"] != st.st_size:
            raise ValueError(f"size {st.st_size} != recorded {meta['size']}")
        if meta["debug_id"] != normalized_debug_id:
            raise ValueError(f"debug id {meta['debug_id']} != {normalized_debug_id}")
        if self.verify_checksums and _crc32_of(symc) != meta["crc32"]:
            raise ValueError("checksum mismatch")
        symcache = symbolic.SymCache.open(str(symc))
        if not symcache.is_latest_version:
            raise ValueError(f"symcache format {symcache.version} is outdated")
        if symcache.debug_id != normalized_debug_id:
            raise ValueError(f"symcache debug id {symcache.debug_id} != {normalized_debug_id}")
        return CacheEntry(symcache, meta["filename"], symc, (st.st_dev, st.st_ino), st.st_size)

    def read_negative(self, stem: str) -> tuple[ModuleStatus, str, float] | None:
        """``(status, detail, last checked)`` for a live negative entry
        (MISSING or MALFORMED; checked: the time of its last recheck, else of
        its creation); expired ones are deleted."""
        now = time.time()
        for status, ttl in (
            (ModuleStatus.MISSING, self.missing_ttl),
            (ModuleStatus.MALFORMED, self.malformed_ttl),
        ):
            path = self.path(stem, "." + status)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if ttl <= 0 or now - st.st_mtime >= ttl:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                self._remove_dir_if_empty(path.parent)
                continue
            try:
                data = json.loads(path.read_text())
                detail = str(data.get("detail", ""))
                checked = float(data.get("checked", st.st_mtime))
            except (OSError, ValueError, AttributeError, TypeError):
                detail, checked = "", st.st_mtime
            return status, detail, checked
        return self._shared_negative(stem)

    def _ttl(self, status: ModuleStatus) -> float:
        return self.missing_ttl if status is ModuleStatus.MISSING else self.malformed_ttl

    def _shared_negative(self, stem: str) -> tuple[ModuleStatus, str, float] | None:
        """Another node's live negative entry for ``stem``, kept here too
        (with its creation time, so it expires here when it does there)."""
        if self.shared_negatives is None:
            return None
        raw = self.shared_negatives.get(stem)
        if raw is None:
            metrics.incr("diskcache.shared_negative", tags=["result:miss"])
            return None
        try:
            value = json.loads(raw)
            status = ModuleStatus(value["status"])
            detail, created = str(value.get("detail", "")), float(value["created"])
        except (ValueError, KeyError, TypeError):
            return None
        if not status.negative or time.time() - created >= self._ttl(status):
            return None
        metrics.incr("diskcache.shared_negative", tags=["result:hit"])
        self._write_negative_file(stem, status, detail, created)
        return status, detail, created

    def claim_recheck(self, stem: str, checked: float) -> bool:
        """Whether this process should recheck the missing module ``stem``
        whose last check was at ``checked``: when that is
        ``recheck_interval`` seconds old or older. The entry then records
        this check (its modification time, which its TTL counts from, is
        kept), so the other processes of the host wait for the next period."""
        now = time.time()
        if self.recheck_interval <= 0 or now - checked < self.recheck_interval:
            return False
        path = self.path(stem, ".missing")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False  # gone meanwhile: the normal path fetches it
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        data["checked"] = now
        try:
            tmp = self.tmp_file(".missing")
            tmp.write_text(json.dumps(data))
            os.utime(tmp, (st.st_atime, st.st_mtime))
            self._place(tmp, path)
        except OSError as exc:
            logger.error("could not record the recheck of %s: %s", stem, exc)
        return True

    def touch(self, path: Path) -> None:
        """Mark an entry as used (the cache manager evicts by this time)."""
        with contextlib.suppress(OSError):
            os.utime(path)

    # -- writes ------------------------------------------------------------

    def _place(self, src: Path, dest: Path) -> None:
        os.chmod(src, 0o644)
        for attempt in range(3):
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, dest)
                return
            except FileNotFoundError:
                # The directory was removed as empty after our mkdir: again.
                if attempt == 2 or not src.exists():
                    raise

    def write_entry(
        self,
        stem: str,
        symcache_tmp: Path,
        filename: str,
        normalized_debug_id: str,
        crc32: int | None = None,
    ) -> Path | None:
        """Move a freshly built symcache into the cache; returns its path, or
        None if it could not be stored (too big for the cache, disk error).
        ``crc32`` is the file's, when the writer computed it on the way (the
        file is not read again)."""
        start = time.perf_counter()
        result = "fail"
        try:
            size = symcache_tmp.stat().st_size
            if size > self.max_size:
                logger.warning(
                    "symcache %s is %d bytes, more than the cache's %d: not cached",
                    stem,
                    size,
                    self.max_size,
                )
                return None
            meta = {
                "filename": filename,
                "debug_id": normalized_debug_id,
                "size": size,
                "crc32": _crc32_of(symcache_tmp) if crc32 is None else crc32,
                "created": time.time(),
            }
            self.make_room(size + 512, keep=stem)
            meta_tmp = self.tmp_file(".meta")
            meta_tmp.write_text(json.dumps(meta))
            self._place(meta_tmp, self.path(stem, ".meta"))
            dest = self.path(stem, ".symc")
            self._place(symcache_tmp, dest)
            self.remove_entry(stem, (".missing", ".malformed"))
            if self.shared_negatives is not None:
                self.shared_negatives.delete(stem)
            result = "success"
            return dest
        except OSError as exc:
            logger.error("could not write cache entry %s: %s", stem, exc)
            if exc.errno == errno.ENOSPC:
                logger.error("the cache disk is full")
            return None
        finally:
            metrics.histogram(
                "diskcache.set",
                value=(time.perf_counter() - start) * 1000,
                tags=[f"result:{result}"],
            )

    def write_negative(self, stem: str, status: ModuleStatus, detail: str) -> None:
        """Remember a MISSING or MALFORMED module (for its TTL), here and in
        the shared negative cache when there is one."""
        if not status.negative:
            raise ValueError(f"{status} is not remembered as a negative entry")
        ttl = self._ttl(status)
        if ttl <= 0:
            return
        created = time.time()
        self._write_negative_file(stem, status, detail, created)
        if self.shared_negatives is not None:
            value = {"status": str(status), "detail": detail, "created": created}
            self.shared_negatives.set(stem, json.dumps(value), ttl)

    def _write_negative_file(
        self, stem: str, status: ModuleStatus, detail: str, created: float
    ) -> None:
        """The negative entry file, its mtime the time the entry was made."""
        try:
            tmp = self.tmp_file("." + status)
            tmp.write_text(json.dumps({"detail": detail, "created": created}))
            os.utime(tmp, (created, created))
            self._place(tmp, self.path(stem, "." + status))
        except OSError as exc:
            logger.error("could not write negative cache entry %s: %s", stem, exc)

    # -- the one path: disk, else (once per host) compute -------------------

    def _cached(
        self,
        stem: str,
        load: Callable[[], ModuleResult | None],
        recheck: Callable[[], bool] | None = None,
    ) -> ModuleResult | None:
        result = load()
        if result is not None:
            return result
        negative = self.read_negative(stem)
        if negative is None:
            return None
        status, detail, checked = negative
        if (
            recheck is not None
            and status is ModuleStatus.MISSING
            and self.claim_recheck(stem, checked)
        ):
            found = recheck()
            metrics.incr("diskcache.recheck", tags=[f"result:{'found' if found else 'missing'}"])
            if found:
                logger.info("module %s is on a symbol server now; fetching it", stem)
                self.remove_entry(stem, (".missing",))
                if self.shared_negatives is not None:
                    self.shared_negatives.delete(stem)
                return None
        return ModuleResult(status, detail=detail, cached=True)

    def get_or_compute(
        self,
        stem: str,
        *,
        load: Callable[[], ModuleResult | None],
        compute: Callable[[], ModuleResult],
        lock_timeout: float,
        recheck: Callable[[], bool] | None = None,
    ) -> ModuleResult:
        """The entry ``stem`` as ``load()`` finds it on disk, else its live
        negative entry, else what ``compute()`` makes of it. ``compute`` runs
        under the stem's cross-process lock after a second look (whoever held
        the lock before may have done the work), so each entry is computed
        once per host; it stores a positive entry itself (``write_entry``),
        and a caller that waits ``lock_timeout`` seconds for the lock in vain
        gets an ERROR for the module (not remembered);
        and its MISSING or MALFORMED results are remembered here. An OSError
        from ``compute`` is our own disk failing (full, read-only, gone): not
        the module's fault, so an ERROR that is not remembered.

        A live MISSING entry whose last check is ``recheck_interval`` seconds
        old is rechecked first (:meth:`claim_recheck`, once per period and
        host): when ``recheck()`` says a symbol server has the module now, the
        entry is dropped and the module computed.

        A new tier (a raw ``.sym`` cache, a shared cache in storage) is a new
        ``load``/``compute`` pair."""
        result = self._cached(stem, load, recheck)
        if result is not None:
            return result
        with self.lock(stem, lock_timeout) as got:
            if got is False:
                # Another process has been fetching it for too long (a slow
                # symbol server): give up on it for this request.
                return ModuleResult(
                    ModuleStatus.ERROR,
                    detail="another eliot worker is still fetching this module "
                    f"(waited {lock_timeout:.0f}s, ELIOT_LOCK_TIMEOUT); try again later",
                )
            result = self._cached(stem, load)
            if result is not None:
                return result
            try:
                result = compute()
            except OSError as exc:
                logger.error("local disk error computing %s: %s", stem, exc)
                return ModuleResult(ModuleStatus.ERROR, detail=f"eliot cache disk error: {exc}")
            if result.status.negative:
                self.write_negative(stem, result.status, result.detail)
            return result

    # -- size control ------------------------------------------------------

    def scan(self) -> dict[str, tuple[int, float]]:
        """``{stem: (bytes on disk, last used)}`` of every entry in the cache
        (see :meth:`usage`); files that are no entry are keyed by their path."""
        entries: dict[str, tuple[int, float]] = {}
        for dirpath, _dirnames, filenames in os.walk(self.cache_dir):
            for name in filenames:
                full = os.path.join(dirpath, name)
                stem, suffix = os.path.splitext(full)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                is_entry = suffix in SUFFIXES and dirpath != str(self.cache_dir)
                rel = os.path.relpath(stem, self.cache_dir) if is_entry else full
                size, used = entries.get(rel, (0 if rel == full else DIRECTORY_CHARGE, 0.0))
                entries[rel] = (size + file_usage(st), max(used, st.st_mtime))
        return entries

    def purge(self) -> int:
        """Delete expired negative entries and empty per-module directories
        (the cache manager does this at each rescan, so neither piles up
        between requests for the same module). Returns the entries deleted."""
        now = time.time()
        ttls = {".missing": self.missing_ttl, ".malformed": self.malformed_ttl}
        deleted = 0
        for dirpath, _dirnames, filenames in os.walk(self.cache_dir, topdown=False):
            for name in filenames:
                suffix = os.path.splitext(name)[1]
                if suffix not in ttls:
                    continue
                path = os.path.join(dirpath, name)
                try:
                    if ttls[suffix] > 0 and now - os.stat(path).st_mtime < ttls[suffix]:
                        continue
                    os.remove(path)
                    deleted += 1
                except FileNotFoundError:
                    continue
            self._remove_dir_if_empty(Path(dirpath))
        return deleted

    def _manager_says_room(self, needed: int) -> bool:
        """True when the cache manager's fresh heartbeat shows the cache well
        under the limit (10% headroom), so a full scan can be skipped."""
        beat = self.read_heartbeat()
        if beat is None or beat["age"] >= HEARTBEAT_TRUST_SECONDS:
            return False
        try:
            return int(beat["usage"]) + needed <= self.max_size * 0.9
        except (KeyError, TypeError, ValueError):
            return False

    def make_room(self, needed: int, keep: str = "") -> int:
        """Evict least-recently-used entries until ``needed`` more bytes fit
        under the limit. Returns how many entries were evicted.

        The cache manager normally keeps the cache under the limit; this is
        the hard stop for when it is behind, stopped or dead. When its
        heartbeat says there is ample room, the tree is not scanned."""
        if self._manager_says_room(needed):
            return 0
        entries = self.scan()
        lru = [
            (stem, size) for stem, (size, _used) in sorted(entries.items(), key=lambda kv: kv[1][1])
        ]
        total = sum(size for _stem, size in lru)
        victims = lru_victims(lru, total, self.max_size, needed=needed, keep=keep)
        for stem in victims:
            self.evict(stem)
            metrics.incr("diskcache.evict", tags=["process:webapp"])
        return len(victims)

    def evict(self, stem: str) -> None:
        """Delete an entry (or a stray file), and its directory once empty."""
        if os.path.isabs(stem):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stem)
            self._remove_dir_if_empty(Path(stem).parent)
        else:
            self.remove_entry(stem)

    # -- single flight -----------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, stem: str, timeout: float = default_of(StoreConfig, "lock_timeout")
    ) -> Iterator[bool | None]:
        """Hold the cross-process lock for ``stem`` (one of LOCK_STRIPES lock
        files). Yields True if the lock was obtained, False after ``timeout``,
        None when the lock file cannot be opened (our disk failing)."""
        stripe = int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) % LOCK_STRIPES
        path = self.locks_dir / f"{stripe:04d}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            logger.error("cannot open lock file %s: %s", path, exc)
            yield None  # no lock to wait for: our own disk failing
            return
        got = False
        try:
            deadline = time.monotonic() + timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        logger.warning("gave up waiting for the lock of %s", stem)
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield got
        finally:
            if got:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- health ------------------------------------------------------------

    def check_writable(self) -> str | None:
        try:
            fd, name = tempfile.mkstemp(dir=self.tmp_dir, suffix=".heartbeat")
            os.write(fd, b"ok")
            os.close(fd)
            os.remove(name)
        except OSError as exc:
            return f"cache directory {self.tmp_dir} is not writable: {exc}"
        return None

    def heartbeat_path(self) -> Path:
        return self.root / HEARTBEAT_FILE

    def read_heartbeat(self) -> dict[str, Any] | None:
        """The cache manager's last heartbeat plus its ``age`` in seconds, or
        None when there is no readable one."""
        try:
            beat = json.loads(self.heartbeat_path().read_text())
            beat["age"] = time.time() - float(beat["time"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return beat
