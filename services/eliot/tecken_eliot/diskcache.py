# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The symcache disk cache shared by every worker on a host.

Layout under ``ELIOT_SYMBOLS_CACHE_DIR``::

    cache/<name>/<ID>.symc       the symcache itself (memory-mapped by workers)
    cache/<name>/<ID>.meta       JSON: module filename, debug id, size, crc32
    cache/<name>/<ID>.missing    negative entry: every symbol server said 404
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markus
import symbolic
from everett.manager import Option, parse_bool, parse_data_size, parse_time_period

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

SUFFIXES = (".symc", ".meta", ".missing", ".malformed")
LOCK_STRIPES = 4096
HEARTBEAT_FILE = "cache-manager.json"
#: How old a cache-manager heartbeat may be for its usage figure to be trusted.
HEARTBEAT_TRUST_SECONDS = 15.0


class CacheConfig:
    """Options shared by the web app and the cache manager."""

    class Config:
        symbols_cache_dir = Option(
            default="/tmp/cache",
            doc="Root of the symcache disk cache shared by the web workers and the cache manager.",
        )
        symbols_cache_max_size = Option(
            default="1gb",
            parser=parse_data_size,
            doc="Most bytes the disk cache may hold (decimal units: 1gb = 1,000,000,000). "
            "The cache manager evicts least-recently-used entries to stay under it, and a "
            "web worker evicts before a write that would go over it.",
        )
        missing_symbols_ttl = Option(
            default="1h",
            parser=parse_time_period,
            doc="How long a module every symbol server answered 404 for is remembered as "
            "missing (no download is tried meanwhile). 0 turns it off.",
        )
        malformed_symbols_ttl = Option(
            default="24h",
            parser=parse_time_period,
            doc="How long a module whose sym file could not be used (bad syntax, wrong "
            "debug id, too large) is remembered as malformed. 0 turns it off.",
        )
        verify_cache_checksums = Option(
            default="true",
            parser=parse_bool,
            doc="Check each cache file's CRC-32 when a worker opens it (once per worker "
            "and file); corrupt files are deleted and rebuilt.",
        )


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
        max_size: int = 1_000_000_000,
        missing_ttl: float = 3600,
        malformed_ttl: float = 86400,
        verify_checksums: bool = True,
    ) -> None:
        self.root = Path(root).resolve()
        self.cache_dir = self.root / "cache"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        self.max_size = max_size
        self.missing_ttl = missing_ttl
        self.malformed_ttl = malformed_ttl
        self.verify_checksums = verify_checksums
        for directory in (self.cache_dir, self.tmp_dir, self.locks_dir):
            directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(cls, config) -> DiskCache:  # type: ignore[no-untyped-def]
        return cls(
            config("symbols_cache_dir"),
            max_size=config("symbols_cache_max_size"),
            missing_ttl=config("missing_symbols_ttl"),
            malformed_ttl=config("malformed_symbols_ttl"),
            verify_checksums=config("verify_cache_checksums"),
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

    def read_negative(self, stem: str) -> tuple[str, str] | None:
        """``(kind, detail)`` for a live negative entry (kind ``missing`` or
        ``malformed``); expired ones are deleted."""
        now = time.time()
        for kind, ttl in (("missing", self.missing_ttl), ("malformed", self.malformed_ttl)):
            path = self.path(stem, "." + kind)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if ttl <= 0 or now - st.st_mtime >= ttl:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            try:
                detail = json.loads(path.read_text()).get("detail", "")
            except (OSError, ValueError, AttributeError):
                detail = ""
            return kind, detail
        return None

    def touch(self, path: Path) -> None:
        """Mark an entry as used (the cache manager evicts by this time)."""
        with contextlib.suppress(OSError):
            os.utime(path)

    # -- writes ------------------------------------------------------------

    def _place(self, src: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, 0o644)
        os.replace(src, dest)

    def write_entry(
        self, stem: str, symcache_tmp: Path, filename: str, normalized_debug_id: str
    ) -> Path | None:
        """Move a freshly built symcache into the cache; returns its path, or
        None if it could not be stored (too big for the cache, disk error)."""
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
                "crc32": _crc32_of(symcache_tmp),
                "created": time.time(),
            }
            self.make_room(size + 512, keep=stem)
            meta_tmp = self.tmp_file(".meta")
            meta_tmp.write_text(json.dumps(meta))
            self._place(meta_tmp, self.path(stem, ".meta"))
            dest = self.path(stem, ".symc")
            self._place(symcache_tmp, dest)
            self.remove_entry(stem, (".missing", ".malformed"))
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

    def write_negative(self, stem: str, kind: str, detail: str) -> None:
        ttl = self.missing_ttl if kind == "missing" else self.malformed_ttl
        if ttl <= 0:
            return
        try:
            tmp = self.tmp_file("." + kind)
            tmp.write_text(json.dumps({"detail": detail, "created": time.time()}))
            self._place(tmp, self.path(stem, "." + kind))
        except OSError as exc:
            logger.error("could not write negative cache entry %s: %s", stem, exc)

    # -- size control ------------------------------------------------------

    def scan(self) -> dict[str, tuple[int, float]]:
        """``{stem: (bytes, last used)}`` of every entry in the cache."""
        entries: dict[str, tuple[int, float]] = {}
        for dirpath, _dirnames, filenames in os.walk(self.cache_dir):
            for name in filenames:
                full = os.path.join(dirpath, name)
                stem, suffix = os.path.splitext(full)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                rel = os.path.relpath(stem, self.cache_dir) if suffix in SUFFIXES else full
                size, used = entries.get(rel, (0, 0.0))
                entries[rel] = (size + st.st_size, max(used, st.st_mtime))
        return entries

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
        total = sum(size for size, _ in entries.values())
        evicted = 0
        for stem, (size, _used) in sorted(entries.items(), key=lambda kv: kv[1][1]):
            if total + needed <= self.max_size:
                break
            if stem == keep:
                continue
            self.evict(stem)
            total -= size
            evicted += 1
            metrics.incr("diskcache.evict", tags=["process:webapp"])
        return evicted

    def evict(self, stem: str) -> None:
        if os.path.isabs(stem):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stem)
        else:
            self.remove_entry(stem)

    # -- single flight -----------------------------------------------------

    @contextlib.contextmanager
    def lock(self, stem: str, timeout: float = 300.0) -> Iterator[bool]:
        """Hold the cross-process lock for ``stem`` (one of LOCK_STRIPES lock
        files). Yields True if the lock was obtained, False after ``timeout``."""
        stripe = int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) % LOCK_STRIPES
        path = self.locks_dir / f"{stripe:04d}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            logger.error("cannot open lock file %s: %s", path, exc)
            yield False
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
