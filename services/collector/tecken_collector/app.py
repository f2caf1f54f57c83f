# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The collector WSGI application: ``create_app()`` builds it from configuration."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import falcon
import markus
from everett.manager import (
    ConfigManager,
    Option,
    parse_bool,
    parse_data_size,
)

from tecken_collector.breakpad import BreakpadSubmitterResource
from tecken_collector.crashmover import CrashMoverConfig, build_crashmover
from tecken_collector.crashstorage import OUTBOX_DIR, FSCrashStorage
from tecken_collector.payload import PayloadLimits
from tecken_collector.seconds import parse_seconds
from tecken_collector.throttler import Throttler
from tecken_shared.config import build_config_manager, log_options
from tecken_shared.dockerflow import add_dockerflow_routes, read_version_info
from tecken_shared.service import setup_service

NAMESPACE = "collector"
HERE = Path(__file__).parent
METRICS_YAML = HERE / "metrics.yaml"

logger = logging.getLogger("tecken_collector.app")
health_metrics = markus.get_metrics("collector.health")
mover_metrics = markus.get_metrics("collector.crashmover")


class AppConfig:
    class Config:
        version_file = Option(
            default="version.json",
            doc="Path of the version.json served by /__version__ (source, version, commit, build).",
        )


class StorageConfig:
    class Config:
        crashstorage_root = Option(
            default="var/collector/crashes",
            doc="Primary directory crashes are written to (date-based layout, fsync'd). "
            "It must exist: a missing directory counts as a failed mount and the "
            "crash goes to the fallback root.",
        )
        crashstorage_fallback_root = Option(
            default="",
            doc="Fallback directory (e.g. an NFS mount) used when the primary root fails "
            "(full, read-only, I/O error, missing). Empty: no fallback, the client gets "
            "a 500 and retries later.",
        )
        crashstorage_fsync = Option(
            default="true",
            parser=parse_bool,
            doc="fsync every file and directory before answering with a CrashID. Turn off "
            "only for throwaway environments.",
        )
        crashstorage_create_roots = Option(
            default="false",
            parser=parse_bool,
            doc="Create the storage roots at start-up if missing (local development).",
        )


class LimitsConfig:
    class Config:
        max_request_size = Option(
            default="25MiB",
            parser=parse_data_size,
            doc="Largest request body accepted (Content-Length); larger ones get 413 "
            "Discarded=malformed_payload_too_large without the body being read.",
        )
        max_decompressed_size = Option(
            default="400MiB",
            parser=parse_data_size,
            doc="Largest body after gzip decompression; beyond it the request gets 413 "
            "Discarded=malformed_decompressed_too_large (gzip bombs).",
        )
        max_annotations_size = Option(
            default="20MiB",
            parser=parse_data_size,
            doc="Largest total size of the annotation parts (text fields and JSON) of one "
            "crash; beyond it: 400 Discarded=malformed_invalid_payload_structure.",
        )
        parse_in_memory_max = Option(
            default="2MiB",
            parser=parse_data_size,
            doc="Bodies (after gzip decompression) up to this size are read whole and split "
            "in memory, which is faster; bigger ones are parsed as a stream. Bounds the "
            "memory a request holds; 0 always streams.",
        )
        spool_dir = Option(
            default="",
            doc="Directory dumps are spooled to while a request is parsed; empty means the "
            "system temporary directory.",
        )
        read_timeout = Option(
            default="60",
            parser=parse_seconds,
            doc="Seconds to wait for more of a request body before giving up with 408 "
            "Discarded=malformed_read_timeout (a client that sent less than its "
            "Content-Length); 0 waits as long as the server lets it. Applies under gunicorn.",
        )
        max_dumps = Option(
            default="100",
            parser=int,
            doc="Most dumps (distinct file parts) one crash may carry; more: 400 "
            "Discarded=malformed_too_many_dumps. Each dump becomes a file on disk, and "
            "crash reporters send a handful.",
        )
        spool_memory_size = Option(
            default="1MiB",
            parser=parse_data_size,
            doc="Dumps up to this size stay in memory while a request is parsed; larger "
            "ones are spooled to disk.",
        )


class BreakpadConfig:
    class Config:
        stage_submitter_bearer_token = Option(
            default="",
            alternate_keys=["root:BREAKPAD_STAGE_SUBMITTER_BEARER_TOKEN"],
            doc="Token (Authorization: Bearer) that allows a submission to carry its own "
            "crash id in a 'uuid' annotation (stage submitter replays). Empty: nobody may.",
        )


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


class IndexResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.text = (
            "<!doctype html><html><head><title>Tecken collector</title></head><body>"
            "<h1>Tecken collector</h1><p>Crash report collector: POST crash reports to "
            "<code>/submit</code>.</p></body></html>"
        )


def build_storage(manager: ConfigManager, outbox: bool = False) -> FSCrashStorage:
    config = manager.with_namespace(NAMESPACE).with_options(StorageConfig)
    return FSCrashStorage(
        config("crashstorage_root"),
        config("crashstorage_fallback_root") or None,
        durable=config("crashstorage_fsync"),
        outbox=outbox,
        create_roots=config("crashstorage_create_roots"),
    )


def build_limits(manager: ConfigManager) -> PayloadLimits:
    config = manager.with_namespace(NAMESPACE).with_options(LimitsConfig)
    return PayloadLimits(
        max_request_size=config("max_request_size"),
        max_decompressed_size=config("max_decompressed_size"),
        max_annotations_size=config("max_annotations_size"),
        parse_in_memory_max=config("parse_in_memory_max"),
        spool_memory_size=config("spool_memory_size"),
        spool_dir=config("spool_dir") or None,
        max_dumps=config("max_dumps"),
    )


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


CONFIG_COMPONENTS = (
    AppConfig,
    StorageConfig,
    LimitsConfig,
    BreakpadConfig,
    Throttler,
    CrashMoverConfig,
)


def create_app(manager: ConfigManager | None = None) -> falcon.App:
    manager = manager or build_config_manager()
    config = manager.with_namespace(NAMESPACE).with_options(AppConfig)
    version = read_version_info(config("version_file"), "tecken-collector")
    setup_service("collector", manager, NAMESPACE, METRICS_YAML, str(version.get("version")))

    storage = build_storage(manager)
    mover = build_crashmover(manager, storage.roots)
    storage.outbox = mover.enabled
    mover_config = manager.with_namespace(NAMESPACE).with_options(CrashMoverConfig)
    after_save = None
    if mover.enabled and mover_config("crashmover_inline"):

        def after_save(crash_id: str, root: Path) -> None:
            if not mover.move(root, crash_id):
                mover_metrics.incr("publish_crash_dropped.count")
                logger.warning("%s: left in the outbox for the crashmover", crash_id)

    breakpad = manager.with_namespace(NAMESPACE).with_options(BreakpadConfig)
    submit = BreakpadSubmitterResource(
        throttler=Throttler.from_config(manager, NAMESPACE),
        storage=storage,
        limits=build_limits(manager),
        stage_token=breakpad("stage_submitter_bearer_token"),
        after_save=after_save,
        read_timeout=manager.with_namespace(NAMESPACE).with_options(LimitsConfig)("read_timeout"),
    )
    log_options(logger, manager, NAMESPACE, CONFIG_COMPONENTS)

    checks = {"crashstorage": lambda: storage_check(storage)}
    if mover.enabled:
        limit = mover_config("crashmover_max_outbox")
        checks["outbox"] = lambda: outbox_check(storage, limit)

    app = falcon.App(middleware=[HealthMetricsMiddleware()])
    app.add_route("/", IndexResource())
    app.add_route("/submit", submit)
    add_dockerflow_routes(
        app,
        checks=checks,
        package="tecken-collector",
        version_file=config("version_file"),
        failure_status=falcon.HTTP_503,
    )
    return app
