# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Start-up shared by every service: read the common options, set up logging,
metrics and Sentry, and install the JSON error handler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import falcon
from everett.manager import ConfigManager

from tecken_shared.config import CommonConfig, host_id
from tecken_shared.logging import setup_logging
from tecken_shared.metrics import MetricSpec, load_registry, setup_metrics
from tecken_shared.sentry import Scrubber, scrub_event, setup_sentry


@dataclass
class ServiceContext:
    name: str
    host_id: str
    local_dev: bool
    registry: dict[str, MetricSpec]
    sentry_on: bool


def setup_service(
    name: str,
    manager: ConfigManager,
    namespace: str,
    metrics_yaml: str | Path,
    release: str,
    *,
    configure_metrics: bool = True,
    common_options: type = CommonConfig,
    scrubber: Scrubber = scrub_event,
    on_scrub_error: Callable[[], None] | None = None,
) -> ServiceContext:
    """Configure logging, metrics and Sentry for service ``name`` from the
    ``namespace``'d common options (e.g. ELIOT_LOGGING_LEVEL).

    ``common_options`` is CommonConfig or a subclass that changes a default
    (Eliot's statsd port, say) so existing deployments keep working.
    ``scrubber`` and ``on_scrub_error`` go to :func:`setup_sentry`."""
    common = manager.with_namespace(namespace).with_options(common_options)
    local_dev = common("local_dev_env")
    hid = host_id(common("hostname"))
    fmt = common("log_format") or ("text" if local_dev else "json")
    if fmt not in ("text", "json"):
        raise ValueError(f"{namespace.upper()}_LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    setup_logging(f"tecken_{name}", common("logging_level"), fmt == "json", hid)
    registry = load_registry(metrics_yaml)
    if configure_metrics:
        backend = common("metrics_backend") or ("logging" if local_dev else "datadog")
        setup_metrics(
            backend,
            registry=registry,
            statsd_host=common("statsd_host"),
            statsd_port=common("statsd_port"),
            host_id=hid,
            raise_on_unregistered=local_dev,
        )
    sentry_on = setup_sentry(
        common("secret_sentry_dsn"),
        release,
        hid,
        name,
        scrubber=scrubber,
        on_scrub_error=on_scrub_error,
    )
    logging.getLogger(f"tecken_{name}").info(
        "%s starting (host %s, local_dev=%s, sentry=%s)", name, hid, local_dev, sentry_on
    )
    return ServiceContext(name, hid, local_dev, registry, sentry_on)


def json_error_serializer(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError
) -> None:
    """Answer every error in the project's one JSON shape:
    ``{"error": <what to do about it>, "title": ..., "description": ...}``.
    ``error`` is the key Tecken's and Eliot's clients read; ``title`` and
    ``description`` are Falcon's."""
    body = exc.to_dict()
    body.setdefault("error", body.get("description") or body.get("title") or "error")
    resp.content_type = "application/json; charset=utf-8"
    resp.media = body
