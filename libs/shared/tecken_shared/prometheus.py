# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Metrics for Prometheus: a markus backend over ``prometheus-client`` and the
``GET /metrics`` resource that serves them.

Turned on with ``<SERVICE>_METRICS_BACKEND=prometheus`` (alone or beside
statsd, e.g. ``datadog,prometheus``). Every key of the service's
``metrics.yaml`` becomes one metric, dots becoming underscores
(``tecken.download_symbol`` -> ``tecken_download_symbol``); ``incr`` is a
counter (``_total``), ``gauge`` a gauge, ``timing`` (milliseconds) and
``histogram`` a histogram. The tags documented for a key are its labels.

Under gunicorn each worker counts for itself: set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory writable by the workers (``make run`` does) and
``/metrics`` adds up every worker's values."""

from __future__ import annotations

import os
import re
from typing import Any

import falcon
from markus.backends import BackendBase
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_registry: CollectorRegistry | None = None

#: Buckets of timings, in milliseconds.
TIMING_BUCKETS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


def metric_name(key: str) -> str:
    """A Prometheus name for a markus key."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


class PrometheusMetrics(BackendBase):
    """markus backend; ``options["registry"]`` is the service's metrics.yaml
    registry (:func:`tecken_shared.metrics.load_registry`)."""

    def __init__(self, options: dict[str, Any] | None = None, filters=None) -> None:
        super().__init__(options, filters)
        global _registry
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics: dict[str, tuple[Any, tuple[str, ...]]] = {}
        for spec in (self.options.get("registry") or {}).values():
            labels = tuple(metric_name(t) for t in spec.tags)
            name = metric_name(spec.key)
            doc = " ".join(spec.description.split()) or spec.key
            if spec.type == "incr":
                metric = Counter(name, doc, labels, registry=self.registry)
            elif spec.type == "gauge":
                metric = Gauge(
                    name, doc, labels, registry=self.registry, multiprocess_mode="liveall"
                )
            else:
                buckets = TIMING_BUCKETS if spec.type == "timing" else Histogram.DEFAULT_BUCKETS
                metric = Histogram(name, doc, labels, registry=self.registry, buckets=buckets)
            self.metrics[spec.key] = (metric, labels)
        _registry = self.registry

    def emit(self, record: Any) -> None:
        entry = self.metrics.get(record.key)
        if entry is None:
            return
        metric, labels = entry
        if labels:
            tags = dict(tag.partition(":")[::2] for tag in record.tags or ())
            metric = metric.labels(*(tags.get(label, "") for label in labels))
        if record.stat_type == "incr":
            metric.inc(record.value)
        elif record.stat_type == "gauge":
            metric.set(record.value)
        else:
            metric.observe(record.value)


def exposition() -> bytes:
    """The current metrics in Prometheus' text format (every worker's when
    ``PROMETHEUS_MULTIPROC_DIR`` is set)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    if _registry is None:
        return b""
    return generate_latest(_registry)


def reset() -> None:
    """Forget the configured backend (metrics are being configured anew)."""
    global _registry
    _registry = None


def enabled() -> bool:
    """Whether the Prometheus backend is configured in this process."""
    return _registry is not None


class MetricsResource:
    """``GET /metrics``: Prometheus' text exposition format; 404 when the
    service's metrics backend does not include ``prometheus``."""

    def __init__(self, namespace: str = "") -> None:
        prefix = namespace.upper() if namespace else "<SERVICE>"
        self.variable = f"{prefix}_METRICS_BACKEND"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not enabled():
            raise falcon.HTTPNotFound(
                title="Prometheus metrics are off",
                description=f"Set {self.variable}=prometheus (or add it) to serve /metrics.",
            )
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = exposition()
