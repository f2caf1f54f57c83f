# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Dockerflow endpoints for a Falcon app: ``/__lbheartbeat__``,
``/__heartbeat__``, ``/__version__`` and ``/__broken__``, plus Prometheus'
``/metrics`` (:mod:`tecken_shared.prometheus`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import falcon

from tecken_shared.prometheus import MetricsResource

logger = logging.getLogger(__name__)

#: A check returns None (healthy) or raises / returns a message saying what is wrong.
HealthCheck = Callable[[], str | None]


def read_version_info(version_file: str | Path | None) -> dict[str, Any]:
    """The ``version.json`` file (``source``, ``version``, ``commit``,
    ``build``), or ``{}`` when there is none or it can't be read: Dockerflow
    serves the build's file or nothing (Antenna's own test accepts either)."""
    if version_file:
        try:
            data = json.loads(Path(version_file).read_text())
            if isinstance(data, dict):
                return data
        except (OSError, ValueError):
            pass
    return {}


def release_name(version_file: str | Path | None, package: str) -> str:
    """What to call this release (Sentry's ``release``): ``version.json``'s
    version, else the installed package's version."""
    version = read_version_info(version_file).get("version")
    if version:
        return str(version)
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"


class LBHeartbeatResource:
    """200 with ``{}``: an empty body would not be the JSON its type says."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/json; charset=utf-8"
        resp.text = "{}"
        resp.status = falcon.HTTP_200

    on_head = on_get


class HeartbeatResource:
    """Runs every check. 200 when all pass; ``failure_status`` otherwise. The
    body names each check and what failed in words an operator can act on."""

    def __init__(self, checks: dict[str, HealthCheck], failure_status: str = falcon.HTTP_500):
        self.checks = checks
        self.failure_status = failure_status

    def run(self) -> dict[str, Any]:
        results: dict[str, str] = {}
        details: dict[str, Any] = {}
        errors = []
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                logger.warning("heartbeat check %s failed: %s", name, problem)
                results[name] = "error"
                details[name] = {"level": "error", "messages": [problem]}
                errors.append({"name": name, "msg": problem})
            else:
                results[name] = "ok"
        return {
            "status": "error" if errors else "ok",
            "checks": results,
            "details": details,
            "errors": errors,
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.run()
        resp.media = body
        resp.status = self.failure_status if body["errors"] else falcon.HTTP_200

    on_head = on_get


class VersionResource:
    def __init__(self, version_file: str | Path | None):
        self.version_file = version_file

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = read_version_info(self.version_file)


class BrokenResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError("intentional exception from /__broken__")


def add_dockerflow_routes(
    app: falcon.App,
    *,
    checks: dict[str, HealthCheck],
    version_file: str | Path | None = None,
    failure_status: str = falcon.HTTP_500,
) -> HeartbeatResource:
    heartbeat = HeartbeatResource(checks, failure_status)
    app.add_route("/__lbheartbeat__", LBHeartbeatResource())
    app.add_route("/__heartbeat__", heartbeat)
    app.add_route("/__version__", VersionResource(version_file))
    app.add_route("/__broken__", BrokenResource())
    app.add_route("/metrics", MetricsResource())
    return heartbeat
