# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Crash ids: a uuid4 whose last seven characters are the throttle-result digit
and the UTC submission date ``YYMMDD``. Storage paths are derived from the date."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

CRASH_ID_RE = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{6}[0-9]{6}$")


def create_crash_id(throttle_result: int, timestamp: datetime | None = None) -> str:
    """A new crash id carrying ``throttle_result`` (0 accept, 1 defer) and the
    UTC date of ``timestamp`` (default: now)."""
    if throttle_result not in (0, 1):
        raise ValueError(f"throttle result digit must be 0 or 1, not {throttle_result!r}")
    when = (timestamp or datetime.now(UTC)).astimezone(UTC)
    base = str(uuid.uuid4())
    return f"{base[:-7]}{throttle_result}{when:%y%m%d}"


def is_valid_crash_id(crash_id: str, strict: bool = True) -> bool:
    """Whether ``crash_id`` has the crash id shape. ``strict`` also demands a
    throttle digit of 0 or 1 and a real calendar date."""
    if not isinstance(crash_id, str) or not CRASH_ID_RE.match(crash_id):
        return False
    if strict:
        if crash_id[-7] not in "01":
            return False
        try:
            date_from_crash_id(crash_id)
        except ValueError:
            return False
    return True


def date_string_from_crash_id(crash_id: str) -> str:
    """``YYYYMMDD`` of the crash id, used in storage paths."""
    return "20" + crash_id[-6:]


def date_from_crash_id(crash_id: str) -> datetime:
    """The submission date (midnight UTC) encoded in the crash id."""
    return datetime.strptime(date_string_from_crash_id(crash_id), "%Y%m%d").replace(tzinfo=UTC)
