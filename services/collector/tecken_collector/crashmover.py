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
(``COLLECTOR_CRASHMOVER_INLINE``); what fails there is left to this process."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import markus
from everett.manager import ConfigManager, Option, parse_bool

from tecken_collector.crashstorage import (
    TMP_SUFFIX,
    CrashPaths,
    FSCrashStorage,
    delete_crash,
    iter_outbox,
    load_crash,
)
from tecken_collector.publish import ObjectCrashStorage, PublishError, SQSPublisher
from tecken_collector.seconds import parse_seconds
from tecken_shared.storage import storage_from_url
from tecken_shared.storage.filesystem import write_atomic

logger = logging.getLogger("tecken_collector.crashmover")
metrics = markus.get_metrics("collector.crashmover")

STORED_MARK = b"stored\n"


class CrashMoverConfig:
    class Config:
        crashmover_storage_url = Option(
            default="",
            doc="Object store crashes are moved to, e.g. "
            "'s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=us-east-1' "
            "(keys: v1/raw_crash/<date>/<id>, v1/dump/<id>, v1/dump_names/<id>). "
            "Empty: crashes stay on local disk.",
        )
        crashmover_queue = Option(
            default="",
            doc="SQS queue (name or queue URL) the id of each stored crash is published to. "
            "Empty: nothing is published.",
        )
        crashmover_queue_endpoint_url = Option(
            default="",
            doc="Endpoint of an SQS-compatible server (moto, ElasticMQ, LocalStack); empty "
            "for AWS.",
        )
        crashmover_queue_region = Option(
            default="us-east-1",
            alternate_keys=["root:AWS_DEFAULT_REGION"],
            doc="Region of the SQS queue.",
        )
        crashmover_inline = Option(
            default="false",
            parser=parse_bool,
            doc="Also try to move each crash right after saving it, inside the request; "
            "failures are left to the crashmover process.",
        )
        crashmover_delete_local = Option(
            default="true",
            parser=parse_bool,
            doc="Delete the local copy of a crash once it is in the object store (only when "
            "COLLECTOR_CRASHMOVER_STORAGE_URL is set).",
        )
        crashmover_poll_interval = Option(
            default="1",
            parser=parse_seconds,
            doc="Seconds between two passes over the outbox.",
        )
        crashmover_concurrency = Option(
            default="8",
            parser=int,
            doc="Crashes moved at the same time by the crashmover (threads).",
        )
        crashmover_max_outbox = Option(
            default="1000",
            parser=int,
            doc="/__heartbeat__ reports an error when more crashes than this wait in the "
            "outbox (the crashmover is not keeping up or the endpoints are down).",
        )
        crashmover_stale_seconds = Option(
            default="600",
            parser=parse_seconds,
            doc="Temp files and outbox markers without a raw crash older than this are "
            "leftovers of a killed writer and are removed.",
        )


class CrashMover:
    def __init__(
        self,
        roots: list[Path],
        *,
        storage: ObjectCrashStorage | None = None,
        publisher: SQSPublisher | None = None,
        delete_local: bool = True,
        stale_seconds: float = 600,
        concurrency: int = 8,
    ) -> None:
        self.roots = list(roots)
        self.storage = storage
        self.publisher = publisher
        self.delete_local = delete_local and storage is not None
        self.stale_seconds = stale_seconds
        self.concurrency = max(1, concurrency)

    @property
    def enabled(self) -> bool:
        return self.storage is not None or self.publisher is not None

    def move(self, root: Path, crash_id: str) -> bool:
        """Move one crash; returns whether it left the outbox. Never raises for
        a storage or queue failure (the crash stays and is retried)."""
        paths = CrashPaths(root, crash_id)
        marker = paths.outbox
        try:
            state = marker.read_bytes()
        except FileNotFoundError:
            return True  # moved by someone else meanwhile
        if not paths.raw_crash.is_file():
            # Marker written, raw crash not (yet): an in-flight save, or a killed one.
            self._drop_if_stale(marker)
            return False
        start = time.perf_counter()
        try:
            if self.storage is not None and state != STORED_MARK:
                crash = load_crash(root, crash_id)
                try:
                    self.storage.save(crash_id, crash.raw_crash, crash.dump_names, crash.dumps)
                except PublishError as exc:
                    metrics.incr("retry_count", tags=["count:save_crash_exception.count"])
                    logger.warning("%s: not moved yet: %s", crash_id, exc)
                    return False
                write_atomic(marker, STORED_MARK)
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
            marker.unlink()
        except FileNotFoundError:
            pass
        metrics.incr("move_crash.count")
        logger.info("%s published", crash_id)
        return True

    def _drop_if_stale(self, marker: Path) -> None:
        try:
            if time.time() - marker.stat().st_mtime > self.stale_seconds:
                logger.warning("%s: outbox marker without a raw crash, removing", marker.name)
                marker.unlink()
        except FileNotFoundError:
            pass

    def pending(self) -> list[tuple[Path, str]]:
        return [(root, crash_id) for root in self.roots for crash_id in iter_outbox(root)]

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
        """Remove temp files left by killed writers; returns how many."""
        removed = 0
        cutoff = time.time() - self.stale_seconds
        for root in self.roots:
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    if name.startswith(".") and name.endswith(TMP_SUFFIX):
                        path = Path(dirpath, name)
                        try:
                            if path.stat().st_mtime < cutoff:
                                path.unlink()
                                removed += 1
                        except FileNotFoundError:
                            pass
        return removed


def build_crashmover(manager: ConfigManager, roots: list[Path]) -> CrashMover:
    config = manager.with_namespace("collector").with_options(CrashMoverConfig)
    storage = None
    if config("crashmover_storage_url"):
        storage = ObjectCrashStorage(storage_from_url(config("crashmover_storage_url")))
    publisher = None
    if config("crashmover_queue"):
        publisher = SQSPublisher(
            config("crashmover_queue"),
            endpoint_url=config("crashmover_queue_endpoint_url") or None,
            region=config("crashmover_queue_region"),
        )
    return CrashMover(
        roots,
        storage=storage,
        publisher=publisher,
        delete_local=config("crashmover_delete_local"),
        stale_seconds=config("crashmover_stale_seconds"),
        concurrency=config("crashmover_concurrency"),
    )


def run(manager: ConfigManager, stop: threading.Event | None = None) -> None:
    """Pass over the outbox every poll interval until ``stop`` is set."""
    from tecken_collector.app import build_storage

    config = manager.with_namespace("collector").with_options(CrashMoverConfig)
    local: FSCrashStorage = build_storage(manager)
    mover = build_crashmover(manager, local.roots)
    stop = stop or threading.Event()
    if not mover.enabled:
        logger.info(
            "crashmover: no object store or queue configured; crashes stay on local disk. "
            "Set COLLECTOR_CRASHMOVER_STORAGE_URL and/or COLLECTOR_CRASHMOVER_QUEUE."
        )
    interval = config("crashmover_poll_interval")
    last_sweep = 0.0
    while not stop.is_set():
        if mover.enabled:
            moved, left = mover.run_once()
            if moved or left:
                logger.info("crashmover pass: %d moved, %d left in the outbox", moved, left)
        if time.monotonic() - last_sweep > 60:
            mover.sweep()
            last_sweep = time.monotonic()
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    from tecken_collector.app import METRICS_YAML, NAMESPACE
    from tecken_shared.config import build_config_manager
    from tecken_shared.service import setup_service

    manager = build_config_manager()
    setup_service("collector", manager, NAMESPACE, METRICS_YAML, "crashmover")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info("crashmover starting")
    run(manager, stop)
    logger.info("crashmover stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
