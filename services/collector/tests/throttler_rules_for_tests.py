# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A rule set loaded by dotted path in the tests."""

from tecken_collector.throttler import DEFER, Rule, always

DEFER_ALL = [Rule("defer_everything", "*", always, DEFER)]


def _explode(throttler: object, crash: dict) -> bool:
    """Puts the crash where a careless change could: a log line (a Sentry
    breadcrumb), the event's extra and contexts; then fails the request."""
    import logging

    import sentry_sdk

    logging.getLogger("tecken_collector.tests").warning("crash annotations: %r", crash)
    sentry_sdk.set_extra("annotations", dict(crash))
    sentry_sdk.set_context("crash", {"annotations": dict(crash), "summary": repr(crash)})
    raise RuntimeError(f"kaboom from the test rule; crash was {crash!r}")


EXPLODE = [Rule("explode", "*", _explode, DEFER)]
