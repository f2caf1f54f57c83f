# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Metrics through markus, with a per-service registry (``metrics.yaml``) of
every key the service emits: type, description and tags. The registry is what
the docs show, and tests fail when code emits a key that is not in it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markus
import yaml
from markus.filters import AddTagFilter, RegisteredMetricsFilter

METRIC_TYPES = {"incr", "gauge", "timing", "histogram"}


@dataclass(frozen=True)
class MetricSpec:
    key: str
    type: str
    description: str
    tags: tuple[str, ...] = field(default_factory=tuple)


def load_registry(path: str | Path) -> dict[str, MetricSpec]:
    """Read a ``metrics.yaml``: a mapping of full key (with the service prefix) to
    ``{type, description, tags}``. Raises ValueError on a malformed entry."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    registry: dict[str, MetricSpec] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("type") not in METRIC_TYPES:
            raise ValueError(f"{path}: metric {key!r} needs a type out of {sorted(METRIC_TYPES)}")
        if not entry.get("description"):
            raise ValueError(f"{path}: metric {key!r} needs a description")
        registry[key] = MetricSpec(
            key=key,
            type=entry["type"],
            description=" ".join(str(entry["description"]).split()),
            tags=tuple(entry.get("tags") or ()),
        )
    return registry


def _markus_registry(registry: dict[str, MetricSpec]) -> dict[str, dict[str, Any]]:
    return {k: {"type": v.type, "description": v.description} for k, v in registry.items()}


def setup_metrics(
    backend: str,
    *,
    registry: dict[str, MetricSpec],
    statsd_host: str = "localhost",
    statsd_port: int = 8125,
    host_id: str = "",
    raise_on_unregistered: bool = False,
) -> None:
    """Configure markus. ``backend`` is 'statsd', 'datadog', 'logging',
    'prometheus' or 'none', or several joined with commas (``datadog,prometheus``)."""
    from tecken_shared import prometheus

    prometheus.reset()
    backends: list[dict[str, Any]] = []
    names = [name.strip() for name in backend.split(",") if name.strip()]
    for name in names:
        if name == "statsd":
            backends.append(
                {
                    "class": "markus.backends.statsd.StatsdMetrics",
                    "options": {"statsd_host": statsd_host, "statsd_port": statsd_port},
                }
            )
        elif name == "datadog":
            backends.append(
                {
                    "class": "markus.backends.datadog.DatadogMetrics",
                    "options": {"statsd_host": statsd_host, "statsd_port": statsd_port},
                }
            )
        elif name == "logging":
            backends.append(
                {
                    "class": "markus.backends.logging.LoggingMetrics",
                    "options": {"logger_name": "markus"},
                }
            )
        elif name == "prometheus":
            backends.append(
                {
                    "class": "tecken_shared.prometheus.PrometheusMetrics",
                    "options": {"registry": registry},
                }
            )
        elif name != "none":
            raise ValueError(f"unknown metrics backend {name!r}")
    filters: list[Any] = [
        RegisteredMetricsFilter(_markus_registry(registry), raise_error=raise_on_unregistered)
    ]
    if host_id:
        filters.append(AddTagFilter(f"host:{host_id}"))
    for entry in backends:
        entry["filters"] = filters
    markus.configure(backends)


def undocumented(records: Iterable[Any], registry: dict[str, MetricSpec]) -> list[str]:
    """Keys (with type) in markus records that the registry does not document, or
    documents with another type. Use with ``MetricsMock().get_records()``."""
    problems = []
    for record in records:
        spec = registry.get(record.key)
        if spec is None:
            problems.append(f"{record.key} ({record.stat_type}) is not in metrics.yaml")
        elif spec.type != record.stat_type:
            problems.append(f"{record.key} is a {record.stat_type}, metrics.yaml says {spec.type}")
    return sorted(set(problems))


def registry_rst_table(registry: dict[str, MetricSpec]) -> str:
    """The registry as an RST list-table, for the docs."""
    if not registry:
        return "This service emits no metrics.\n"
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 30 10 40 20",
        "",
        "   * - Key",
        "     - Type",
        "     - Description",
        "     - Tags",
    ]
    for spec in sorted(registry.values(), key=lambda s: s.key):
        lines += [
            f"   * - ``{spec.key}``",
            f"     - {spec.type}",
            f"     - {spec.description}",
            "     - " + (", ".join(f"``{t}``" for t in spec.tags) or "none"),
        ]
    return "\n".join(lines) + "\n"
