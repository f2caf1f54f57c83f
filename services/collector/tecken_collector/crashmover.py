# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The crashmover: moves crashes from local disk to the object store and
publishes their ids to the queue, from a local outbox, so an object-store or
queue outage never loses an accepted crash.

The collector writes an outbox marker ``<root>/outbox/<crash_id>`` (durably,
before the raw crash) for every stored crash when the scale-out path is
configured. The crashmover (``python -m tecken_collector.crashmover``, one per
node, under honcho in local development) scans the outbox of the primary and
fallback roots, uploads each complete crash (dumps first, raw crash last),
publishes its id, and only then removes the marker (and the local copy, if
``COLLECTOR_CRASHMOVER_DELETE_LOCAL``). Failures leave the marker in place;
the crash is retried on the next pass. Upload and publish are idempotent (same
keys, and queue consumers must tolerate a duplicate id).

The collector can also try the move right after saving
(``COLLECTOR_CRASHMOVER_INLINE``); what fails there is left to this process.

Several crashmovers may share a root (the fallback root on NFS): each move
first *claims* the crash by renaming its marker to
``<crash_id>.claimed-<owner>`` (a rename is atomic, also on NFS: one mover
wins, the others skip the crash), so each crash is moved and published by
one mover. A failed move renames the marker back for a later pass; a claim
older than ``COLLECTOR_CRASHMOVER_CLAIM_TIMEOUT`` (its mover died) is given
back to the outbox by whichever mover sees it first."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import markus
from everett.manager import ConfigManager

from tecken_collector.crashid import is_valid_crash_id
from tecken_collector.crashstorage import (
    OUTBOX_DIR,
    TMP_SUFFIX,
    CrashPaths,
    delete_crash,
    iter_outbox,
    load_crash,
)
from tecken_collector.processor import CrashProcessor, ProcessingFailed, processed_path
from tecken_collector.publish import (
    CrashPublisher,
    CrashStore,
    ObjectCrashStorage,
    PublishError,
    build_publisher,
)
from tecken_collector.settings import (
    METRICS_YAML,
    NAMESPACE,
    CrashMoverConfig,
    build_storage,
    read_options,
)
from tecken_shared.config import build_config_manager
from tecken_shared.service import setup_service
from tecken_shared.storage import storage_from_url
from tecken_shared.storage.filesystem import write_atomic

logger = logging.getLogger("tecken_collector.crashmover")
metrics = markus.get_metrics("collector.crashmover")

STORED_MARK = b"stored\n"
#: Between a crash id and its mover's name in a claimed outbox marker.
CLAIM_SEP = ".claimed-"


def claim(marker: Path, owner: str) -> Path | None:
    """Take the crash of outbox ``marker`` for ``owner``: rename the marker
    to a name only that owner uses (atomic: one of several movers wins) and
    stamp it with the time of the claim. None when another mover has it."""
    claimed = marker.with_name(f"{marker.name}{CLAIM_SEP}{owner}")
    try:
        os.rename(marker, claimed)
        os.utime(claimed)
    except FileNotFoundError:
        return None
    return claimed


def release(claimed: Path, marker: Path) -> None:
    """Give a claimed crash back to the outbox (for the next pass of any mover)."""
    try:
        os.rename(claimed, marker)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class MoverSettings:
    """The options of :class:`~tecken_collector.settings.CrashMoverConfig`, read once."""

    crashmover_storage_url: str
    crashmover_queue: str
    crashmover_queue_engine: str
    crashmover_queue_endpoint_url: str
    crashmover_queue_region: str
    crashmover_inline: bool
    crashmover_delete_local: bool
    crashmover_poll_interval: float
    crashmover_concurrency: int
    crashmover_max_outbox: int
    crashmover_stale_seconds: float
    crashmover_claim_timeout: float
    crashmover_processor_url: str
    crashmover_processor_timeout: float

    @classmethod
    def from_config(cls, manager: ConfigManager) -> MoverSettings:
        return read_options(manager, CrashMoverConfig, cls)

    @property
    def enabled(self) -> bool:
        """Whether crashes have somewhere to move to (so the collector writes
        outbox markers)."""
        return bool(
            self.crashmover_storage_url or self.crashmover_queue or self.crashmover_processor_url
        )


class CrashMover:
    """Moves the crashes of the outboxes under ``roots`` to ``storage`` and/or
    ``publisher``; built from :class:`MoverSettings` (:meth:`from_settings`)."""

    def __init__(
        self,
        roots: list[Path],
        *,
        storage: CrashStore | None,
        publisher: CrashPublisher | None,
        delete_local: bool,
        stale_seconds: float,
        concurrency: int,
        poll_interval: float,
        inline: bool,
        max_outbox: int,
        processor: CrashProcessor | None = None,
        claim_timeout: float = 600,
    ) -> None:
        self.roots = list(roots)
        self.storage = storage
        self.publisher = publisher
        self.delete_local = delete_local and storage is not None
        self.stale_seconds = stale_seconds
        self.concurrency = max(1, concurrency)
        self.poll_interval = poll_interval
        self.inline = inline and self.enabled
        self.max_outbox = max_outbox
        self.processor = processor
        self.claim_timeout = claim_timeout
        #: This mover's name in its claims: unique per process, host and start.
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @classmethod
    def from_settings(cls, settings: MoverSettings, roots: list[Path]) -> CrashMover:
        storage = None
        if settings.crashmover_storage_url:
            storage = ObjectCrashStorage(storage_from_url(settings.crashmover_storage_url))
        publisher = None
        if settings.crashmover_queue:
            publisher = build_publisher(
                settings.crashmover_queue_engine,
                settings.crashmover_queue,
                endpoint_url=settings.crashmover_queue_endpoint_url,
                region=settings.crashmover_queue_region,
            )
        return cls(
            roots,
            storage=storage,
            publisher=publisher,
            delete_local=settings.crashmover_delete_local,
            stale_seconds=settings.crashmover_stale_seconds,
            concurrency=settings.crashmover_concurrency,
            poll_interval=settings.crashmover_poll_interval,
            inline=settings.crashmover_inline,
            max_outbox=settings.crashmover_max_outbox,
            claim_timeout=settings.crashmover_claim_timeout,
            processor=CrashProcessor(
                settings.crashmover_processor_url, settings.crashmover_processor_timeout
            )
            if settings.crashmover_processor_url
            else None,
        )

    @property
    def enabled(self) -> bool:
        return self.storage is not None or self.publisher is not None or self.processor is not None

    def move(self, root: Path, crash_id: str) -> bool:
        """Move one crash; returns whether it left the outbox (moved here, or
        taken by another mover). Never raises for a storage or queue failure
        (the crash goes back to the outbox and is retried)."""
        paths = CrashPaths(root, crash_id)
        marker = paths.outbox
        if not marker.exists():
            return True  # moved or taken by another mover meanwhile
        if not paths.raw_crash.is_file():
            # Marker written, raw crash not (yet): an in-flight save, or a killed one.
            self._drop_if_stale(marker)
            return False
        claimed = claim(marker, self.owner)
        if claimed is None:
            metrics.incr("claim_lost.count")
            return True
        try:
            moved = self._move_claimed(root, crash_id, claimed)
        except BaseException:
            release(claimed, marker)
            raise
        if not moved:
            release(claimed, marker)
        return moved

    def _move_claimed(self, root: Path, crash_id: str, claimed: Path) -> bool:
        """Move a crash this mover has claimed (``claimed`` is its marker)."""
        try:
            state = claimed.read_bytes()
        except FileNotFoundError:
            return True  # a claim timed out and was taken over
        start = time.perf_counter()
        try:
            processed = processed_path(root, crash_id)
            if self.processor is not None and state != STORED_MARK and not processed.is_file():
                try:
                    self.processor.process(root, crash_id)
                except ProcessingFailed as exc:
                    metrics.incr("retry_count", tags=["count:process_crash_exception.count"])
                    logger.warning("%s: not processed yet: %s", crash_id, exc)
                    return False
            if self.storage is not None and state != STORED_MARK:
                crash = load_crash(root, crash_id)
                try:
                    self.storage.save(crash_id, crash)
                    if processed.is_file():
                        self.storage.save_processed(crash_id, processed.read_bytes())
                except PublishError as exc:
                    metrics.incr("retry_count", tags=["count:save_crash_exception.count"])
                    logger.warning("%s: not moved yet: %s", crash_id, exc)
                    return False
                write_atomic(claimed, STORED_MARK)
            if self.publisher is not None:
                try:
                    self.publisher.publish(crash_id)
                except PublishError as exc:
                    metrics.incr("retry_count", tags=["count:publish_crash_exception.count"])
                    logger.warning("%s: not published yet: %s", crash_id, exc)
                    return False
        except (OSError, ValueError) as exc:
            # Unreadable or damaged files: this crash stays in the outbox, the
            # others of the pass still move.
            logger.error("%s: cannot read the local crash in %s: %s", crash_id, root, exc)
            return False
        metrics.timing("crash_publish.time", (time.perf_counter() - start) * 1000)
        if self.delete_local:
            delete_crash(root, crash_id)
        try:
            claimed.unlink()
        except FileNotFoundError:
            pass
        metrics.incr("move_crash.count")
        logger.info("%s published", crash_id)
        return True

    def move_saved(self, crash_id: str, root: Path) -> None:
        """The inline move (``COLLECTOR_CRASHMOVER_INLINE``), right after the web
        app saved a crash: what fails is left in the outbox for this process."""
        if not self.move(root, crash_id):
            metrics.incr("publish_crash_dropped.count")
            logger.warning("%s: left in the outbox for the crashmover", crash_id)

    def _drop_if_stale(self, marker: Path) -> None:
        try:
            if time.time() - marker.stat().st_mtime > self.stale_seconds:
                logger.warning("%s: outbox marker without a raw crash, removing", marker.name)
                marker.unlink()
        except FileNotFoundError:
            pass

    def pending(self) -> list[tuple[Path, str]]:
        self.release_stale_claims()
        return [(root, crash_id) for root in self.roots for crash_id in iter_outbox(root)]

    def release_stale_claims(self) -> int:
        """Give back to the outbox the crashes claimed longer ago than
        ``claim_timeout`` (their mover died); returns how many."""
        released = 0
        cutoff = time.time() - self.claim_timeout
        for root in self.roots:
            outbox = root / OUTBOX_DIR
            try:
                names = os.listdir(outbox)
            except FileNotFoundError:
                continue
            for name in names:
                crash_id, sep, _owner = name.partition(CLAIM_SEP)
                if not sep or not is_valid_crash_id(crash_id, strict=False):
                    continue
                claimed = outbox / name
                try:
                    if claimed.stat().st_mtime >= cutoff:
                        continue
                    os.rename(claimed, outbox / crash_id)
                except FileNotFoundError:
                    continue
                logger.warning("%s: claim %s timed out, back in the outbox", crash_id, name)
                released += 1
        if released:
            metrics.incr("claim_released.count", released)
        return released

    def run_once(self) -> tuple[int, int]:
        """One pass over every outbox; returns (moved, left)."""
        pending = self.pending()
        metrics.gauge("outbox_size", len(pending))
        if self.concurrency == 1 or len(pending) <= 1:
            results = [self.move(root, crash_id) for root, crash_id in pending]
        else:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="crashmover") as pool:
                results = list(pool.map(lambda item: self.move(*item), pending))
        moved = sum(results)
        return moved, len(results) - moved

    def sweep(self) -> int:
        """Remove what killed writers left behind, older than ``stale_seconds``:
        dot-named temp files, and dumps and dump names of crashes whose raw
        crash was never written (a crash exists only once its raw crash does,
        so those are never part of an acknowledged crash). Returns how many."""
        removed = 0
        cutoff = time.time() - self.stale_seconds
        for root in self.roots:
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    path = Path(dirpath, name)
                    if name.startswith(".") and name.endswith(TMP_SUFFIX):
                        removed += _unlink_older(path, cutoff)
                    elif _is_orphan(root, path):
                        if _unlink_older(path, cutoff):
                            logger.warning("%s: part of a crash never completed, removed", path)
                            removed += 1
        if removed:
            metrics.incr("sweep_removed.count", removed)
        return removed


def _unlink_older(path: Path, cutoff: float) -> int:
    """Remove ``path`` if it was last modified before ``cutoff``; 1 if removed."""
    try:
        if path.stat().st_mtime < cutoff:
            path.unlink()
            return 1
    except FileNotFoundError:
        pass
    return 0


def _is_orphan(root: Path, path: Path) -> bool:
    """Whether ``path`` is a dump (``<day>/<dump name>/<crash id>``) or dump
    names file (``<day>/dump_names/<crash id>.json``) under ``root`` whose
    raw crash does not exist."""
    try:
        day, kind, name = path.relative_to(root).parts
    except ValueError:
        return False
    if not (len(day) == 8 and day.isdigit()) or kind in ("raw_crash", OUTBOX_DIR):
        return False
    crash_id = name.removesuffix(".json") if kind == "dump_names" else name
    if not is_valid_crash_id(crash_id, strict=False):
        return False
    return not CrashPaths(root, crash_id).raw_crash.exists()


def build_crashmover(manager: ConfigManager, roots: list[Path]) -> CrashMover:
    return CrashMover.from_settings(MoverSettings.from_config(manager), roots)


def run(manager: ConfigManager, stop: threading.Event | None = None) -> None:
    """Pass over the outbox every poll interval until ``stop`` is set."""
    settings = MoverSettings.from_config(manager)
    local = build_storage(manager, outbox=settings.enabled)
    mover = CrashMover.from_settings(settings, local.roots)
    stop = stop or threading.Event()
    if not mover.enabled:
        logger.info(
            "crashmover: no object store or queue configured; crashes stay on local disk. "
            "Set COLLECTOR_CRASHMOVER_STORAGE_URL and/or COLLECTOR_CRASHMOVER_QUEUE."
        )
    last_sweep = 0.0
    while not stop.is_set():
        if mover.enabled:
            moved, left = mover.run_once()
            if moved or left:
                logger.info("crashmover pass: %d moved, %d left in the outbox", moved, left)
        if time.monotonic() - last_sweep > 60:
            mover.sweep()
            last_sweep = time.monotonic()
        stop.wait(mover.poll_interval)


def main(argv: list[str] | None = None) -> int:
    manager = build_config_manager()
    setup_service(NAMESPACE, manager, NAMESPACE, METRICS_YAML, "crashmover")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info("crashmover starting")
    run(manager, stop)
    logger.info("crashmover stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
