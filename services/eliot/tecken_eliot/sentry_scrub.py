# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Counting failures of Sentry's event scrubber (``eliot.sentry_scrub_error``):
a scrubber that raises would otherwise drop the event silently."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import markus
import sentry_sdk

from tecken_shared.sentry import scrub_event, sentry_enabled

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

Scrubber = Callable[[dict[str, Any], Any], dict[str, Any] | None]


def counting_scrubber(service: str, scrub: Scrubber = scrub_event) -> Scrubber:
    """``scrub`` that, when it raises, counts ``sentry_scrub_error`` with tag
    ``service:<service>`` and drops the event (it may hold unscrubbed data)."""

    def before_send(event: dict[str, Any], hint: Any = None) -> dict[str, Any] | None:
        try:
            return scrub(event, hint)
        except Exception:
            logger.exception("sentry scrubber failed; event dropped")
            metrics.incr("sentry_scrub_error", tags=[f"service:{service}"])
            return None

    return before_send


def install(service: str) -> None:
    """Wrap the configured ``before_send`` of the active Sentry client."""
    client = sentry_sdk.get_client()
    options = getattr(client, "options", None)
    if not sentry_enabled() or not isinstance(options, dict):
        return
    options["before_send"] = counting_scrubber(service, options.get("before_send") or scrub_event)
