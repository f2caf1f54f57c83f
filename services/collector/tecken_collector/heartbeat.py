# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``/__heartbeat__`` checks (the crash storage roots take a write; the
outbox is not piling up) and the middleware counting hits on the Dockerflow
endpoints. Object store and queue outages do not fail the heartbeat by
themselves: the node still accepts crashes, and the outbox check reports when
they pile up."""

from __future__ import annotations

import os
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


def storage_check(storage: FSCrashStorage) -> str | None:
    """Heartbeat: the primary root takes a write (so crashes are not all going
    to the fallback), and so does the fallback root if one is configured."""
    problems = []
    for label, root in zip(("primary", "fallback"), storage.roots, strict=False):
        problem = _probe_root(root)
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


def heartbeat_checks(storage: FSCrashStorage, mover: CrashMover) -> dict[str, HealthCheck]:
    checks: dict[str, HealthCheck] = {"crashstorage": lambda: storage_check(storage)}
    if mover.enabled:
        checks["outbox"] = lambda: outbox_check(storage, mover.max_outbox)
    return checks
