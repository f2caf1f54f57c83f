# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""What the collector lets out to Sentry. A crash carries personal data
(``Email``, ``URL``, ``Comments``, telemetry ids) and a submission may carry
the stage submitter's token; any of them can end up in an event: in the local
variables of a frame (the annotations dict, the parsed crash's repr), in an
exception message or a log breadcrumb, in the request's query string.

:func:`scrub_collector_event` runs the shared scrubber (headers, cookies,
addresses), then walks the whole event except the fields that only describe
code (file names, functions, source lines, ids of the event and trace):

* a value under a personal annotation name (exact case) or under a name that
  says secret (``token``, ``password``, ``email``, ... in any case) is replaced;
* in text, ``Name: value`` / ``'Name': 'value'`` / ``Name=value`` pairs with
  such names, ``Bearer <token>``, e-mail addresses and long opaque strings
  (32+ letters and digits, such as tokens and hashes) are replaced.

If scrubbing fails the event is dropped and ``collector.sentry_scrub_error``
is counted (:func:`count_scrub_error`, wired by ``tecken_shared.sentry``)."""

from __future__ import annotations

import re
from typing import Any

import markus

from tecken_collector.submit_resource import REMOVED_FIELDS
from tecken_shared.sentry import SCRUBBED, scrub_event

metrics = markus.get_metrics("collector")

#: Crash annotations that hold personal data (names are case-sensitive).
PERSONAL_ANNOTATIONS = frozenset({*REMOVED_FIELDS, "URL", "Comments"})
#: Parts of a name (any case) whose value is a secret or personal.
SECRET_NAME_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "credential",
    "email",
)
#: Fields that describe code or ids of the event, left as they are.
CODE_FIELDS = frozenset(
    {
        "event_id",
        "trace_id",
        "span_id",
        "parent_span_id",
        "sdk",
        "modules",
        "release",
        "dist",
        "environment",
        "server_name",
        "platform",
        "timestamp",
        "start_timestamp",
        "level",
        "logger",
        "transaction",
        "type",
        "mechanism",
        "filename",
        "abs_path",
        "module",
        "function",
        "lineno",
        "colno",
        "in_app",
        "context_line",
        "pre_context",
        "post_context",
        "_meta",
    }
)

_NAMES = "|".join(re.escape(name) for name in sorted(PERSONAL_ANNOTATIONS))
_SECRETS = "|".join(SECRET_NAME_PARTS)
# A name, optionally quoted, then ':' or '=', then a quoted or a bare value.
_PAIR_RE = re.compile(
    rf"""(?P<name>(?P<nq>["']?)(?:\b(?:{_NAMES})\b|\w*(?i:{_SECRETS})\w*)(?P=nq)\s*[:=]\s*)"""
    r"""(?:(?P<q>["'])(?:\\.|(?!(?P=q)).)*(?P=q)?|[^\s&,;)}\]"']+)"""
)
_BEARER_RE = re.compile(r"(?i)\b(?P<name>(?:bearer|basic)\s+)[\w.~+/=-]+")
_EMAIL_RE = re.compile(r"[\w.%+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_TOKEN_RE = re.compile(r"(?<![\w+=])(?=[\w+=]*\d)(?=[\w+=]*[A-Za-z])[\w+=]{32,}")


def _secret_name(name: str) -> bool:
    return name in PERSONAL_ANNOTATIONS or any(p in name.lower() for p in SECRET_NAME_PARTS)


def scrub_text(text: str) -> str:
    """``text`` with personal values and token-like strings replaced."""
    text = _BEARER_RE.sub(lambda m: m.group("name") + SCRUBBED, text)
    text = _PAIR_RE.sub(lambda m: m.group("name") + SCRUBBED, text)
    text = _EMAIL_RE.sub(SCRUBBED, text)
    return _TOKEN_RE.sub(SCRUBBED, text)


def scrub_value(value: Any, name: str | None = None) -> Any:
    """``value`` (found under ``name``) with personal data replaced, recursively."""
    if name is not None and name in CODE_FIELDS:
        return value
    if name is not None and _secret_name(name) and value not in (None, "", [], {}):
        return SCRUBBED
    if isinstance(value, dict):
        return {key: scrub_value(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_collector_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any] | None:
    """Sentry's ``before_send`` for the collector (see the module docstring)."""
    scrubbed = scrub_event(event, hint)
    if scrubbed is None:
        return None
    return scrub_value(scrubbed)


def count_scrub_error() -> None:
    metrics.incr("sentry_scrub_error")
