# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Sentry's ``before_send`` for the symbols service: the shared scrubber, and
when it fails the event is dropped (it may still hold an Auth-Token) and
``tecken.sentry_scrub_error`` is counted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import markus
import sentry_sdk

from tecken_shared.sentry import scrub_event

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

BeforeSend = Callable[[dict[str, Any], Any], dict[str, Any] | None]


def safe_scrubber(scrub: BeforeSend = scrub_event) -> BeforeSend:
    def before_send(event: dict[str, Any], hint: Any = None) -> dict[str, Any] | None:
        try:
            return scrub(event, hint)
        except Exception:
            logger.exception("scrubbing a Sentry event failed; the event is dropped")
            metrics.incr("sentry_scrub_error")
            return None

    return before_send


def install() -> bool:
    """Wrap the active Sentry client's ``before_send``; False when Sentry is off."""
    client = sentry_sdk.get_client()
    options = getattr(client, "options", None)
    if client.transport is None or not isinstance(options, dict):
        return False
    options["before_send"] = safe_scrubber(options.get("before_send") or scrub_event)
    return True
