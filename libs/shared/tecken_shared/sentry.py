# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Sentry set-up: on only when a DSN is configured, with request data scrubbed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger

logger = logging.getLogger(__name__)

SCRUBBED_HEADERS = {
    "auth-token",
    "authorization",
    "cookie",
    "x-forwarded-for",
    "x-real-ip",
    "x-forwarded-host",
}
SCRUBBED = "[Scrubbed]"


def scrub_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any] | None:
    """Remove secrets and personal data from an event before it leaves the host."""
    request = event.get("request") or {}
    headers = request.get("headers")
    if isinstance(headers, dict):
        for name in list(headers):
            if name.lower() in SCRUBBED_HEADERS:
                headers[name] = SCRUBBED
    if "cookies" in request:
        request["cookies"] = SCRUBBED
    if "env" in request and isinstance(request["env"], dict):
        for key in ("REMOTE_ADDR", "HTTP_X_FORWARDED_FOR"):
            if key in request["env"]:
                request["env"][key] = SCRUBBED
    user = event.get("user")
    if isinstance(user, dict) and "ip_address" in user:
        user["ip_address"] = SCRUBBED
    return event


Scrubber = Callable[[dict[str, Any], Any], dict[str, Any] | None]


def guarded(scrubber: Scrubber, on_scrub_error: Callable[[], None] | None = None) -> Scrubber:
    """``scrubber`` as a ``before_send`` that never lets an unscrubbed event
    out: when it raises, the failure is logged, ``on_scrub_error()`` is called
    (each service counts it) and the event is dropped."""

    # The failure is logged through a logger Sentry ignores: an error logged
    # through any other would be captured as an event and scrubbed again.
    ignore_logger(logger.name)

    def before_send(event: dict[str, Any], hint: Any = None) -> dict[str, Any] | None:
        try:
            return scrubber(event, hint)
        except Exception:
            logger.exception("scrubbing a Sentry event failed; the event is dropped")
            if on_scrub_error is not None:
                on_scrub_error()
            return None

    return before_send


def setup_sentry(
    dsn: str,
    release: str,
    host_id: str,
    service: str,
    *,
    scrubber: Scrubber = scrub_event,
    on_scrub_error: Callable[[], None] | None = None,
) -> bool:
    """Initialise sentry-sdk with ``scrubber`` (guarded by :func:`guarded`) as
    ``before_send``. Returns whether events will be sent (a DSN was set)."""
    if not dsn:
        logger.info("sentry: no DSN configured, error reporting is off")
        return False
    from sentry_sdk.integrations.falcon import FalconIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=release,
        server_name=host_id,
        # Request bodies (crash annotations, uploads) may hold personal data.
        max_request_body_size="never",
        before_send=guarded(scrubber, on_scrub_error),
        integrations=[FalconIntegration()],
    )
    sentry_sdk.set_tag("service", service)
    logger.info("sentry: error reporting is on")
    return True


def sentry_enabled() -> bool:
    """Whether Sentry will send events. ``is_active()`` is true even without a
    DSN, so look at the transport."""
    return sentry_sdk.get_client().transport is not None
