# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``/__heartbeat__`` checks (the crash storage roots take a write and have
room for more crashes; the outbox is not piling up) and the middleware counting hits on the Dockerflow
endpoints. Object store and queue outages do not fail the heartbeat by
themselves: the node still accepts crashes, and the outbox check reports when
they pile up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import falcon
import markus

from tecken_collector.crashmover import CrashMover
from tecken_collector.crashstorage import OUTBOX_DIR, FSCrashStorage
from tecken_shared.dockerflow import HealthCheck

health_metrics = markus.get_metrics("collector.health")


class HealthMetricsMiddleware:
    """Counts hits on the Dockerflow endpoints (collector.health.*)."""

    KEYS = {
        "/__broken__": "broken.count",
        "/__version__": "version.count",
        "/__lbheartbeat__": "lbheartbeat.count",
        "/__heartbeat__": "heartbeat.count",
    }

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        key = self.KEYS.get(req.path)
        if key:
            health_metrics.incr(key)


def _probe_root(root: Path) -> str | None:
    """None if a small file can be created, written and removed under ``root``."""
    if not root.is_dir():
        return f"{root} does not exist (mount missing?)"
    probe = root / f".heartbeat-{os.getpid()}.tmp"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return f"{root} is not writable: {exc.strerror or exc}"
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return None


@dataclass(frozen=True)
class RoomNeeded:
    """What a storage root must have free to count as healthy
    (``COLLECTOR_CRASHSTORAGE_MIN_FREE_SPACE`` / ``_MIN_FREE_INODES``)."""

    min_free_space: int
    min_free_inodes: int


def _room_problem(root: Path, room: RoomNeeded) -> str | None:
    """None if ``root`` has at least the free space and inodes of ``room``."""
    try:
        stats = os.statvfs(root)
    except OSError as exc:
        return f"{root} cannot be inspected: {exc.strerror or exc}"
    free = stats.f_bavail * stats.f_frsize
    if free < room.min_free_space:
        return (
            f"{root} has {free // 1024**2} MiB free, less than the "
            f"{room.min_free_space // 1024**2} MiB a crash may need "
            "(COLLECTOR_CRASHSTORAGE_MIN_FREE_SPACE)"
        )
    if stats.f_files and stats.f_favail < room.min_free_inodes:
        return (
            f"{root} has {stats.f_favail} free inodes, fewer than "
            f"{room.min_free_inodes} (COLLECTOR_CRASHSTORAGE_MIN_FREE_INODES)"
        )
    return None


def storage_check(storage: FSCrashStorage, room: RoomNeeded | None = None) -> str | None:
    """Heartbeat: the primary root takes a write (so crashes are not all going
    to the fallback), and so does the fallback root if one is configured; each
    has the free space and inodes of ``room``."""
    problems = []
    for label, root in zip(("primary", "fallback"), storage.roots, strict=False):
        problem = _probe_root(root)
        if not problem and room is not None:
            problem = _room_problem(root, room)
        if problem:
            problems.append(f"{label} crash storage root {problem}")
    return "; ".join(problems) or None


def outbox_check(storage: FSCrashStorage, limit: int) -> str | None:
    """Heartbeat: the outbox is not piling up (the crashmover keeps up)."""
    waiting = 0
    for root in storage.roots:
        try:
            with os.scandir(root / OUTBOX_DIR) as entries:
                waiting += sum(1 for e in entries if not e.name.startswith("."))
        except OSError:
            continue
    if waiting > limit:
        return (
            f"{waiting} crashes wait in the outbox (more than {limit}): is the crashmover "
            "running, and are the object store and the queue reachable?"
        )
    return None


def heartbeat_checks(
    storage: FSCrashStorage, mover: CrashMover, room: RoomNeeded | None = None
) -> dict[str, HealthCheck]:
    checks: dict[str, HealthCheck] = {"crashstorage": lambda: storage_check(storage, room)}
    if mover.enabled:
        checks["outbox"] = lambda: outbox_check(storage, mover.max_outbox)
    return checks
