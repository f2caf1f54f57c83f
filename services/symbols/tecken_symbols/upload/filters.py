# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Query filters of the uploads/files JSON API, turned into SQL conditions.

``size``: ``>10mb,<2g`` (operators ``<= >= < > =``; multipliers b, k/kb, m/mb,
g/gb). Dates: ``>=2026-11-01``, ``today``, ``yesterday``, ``null`` (and
``!null``). ``user``: an exact email when it has an ``@``, else a
case-insensitive substring; a leading ``!`` negates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tecken_symbols.upload.errors import UploadError

OPERATORS = ("<=", ">=", "<", ">", "=")
MULTIPLIERS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
}
SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
# Largest value a BIGINT column (and SQLite's INTEGER) holds.
BIGINT_MAX = 2**63 - 1
MAX_PAGE = 1_000_000_000


def _split_op(term: str) -> tuple[str, str]:
    for op in OPERATORS:
        if term.startswith(op):
            return op, term[len(op) :].strip()
    return "=", term.strip()


def size_conditions(column: str, value: str) -> tuple[list[str], list[Any]]:
    conds, params = [], []
    for term in value.split(","):
        term = term.strip().lower()
        if not term:
            continue
        op, rest = _split_op(term)
        match = SIZE_RE.fullmatch(rest)
        if not match or match.group(2) not in MULTIPLIERS:
            raise UploadError(f"Invalid size filter {term!r} (e.g. >10mb,<2gb)")
        number = match.group(1)
        if len(number) > 30:
            raise UploadError(f"Invalid size filter {term!r} (larger than {BIGINT_MAX} bytes)")
        size = int(Decimal(number) * MULTIPLIERS[match.group(2)])
        if size > BIGINT_MAX:
            raise UploadError(f"Invalid size filter {term!r} (larger than {BIGINT_MAX} bytes)")
        conds.append(f"{column} {op} ?")
        params.append(size)
    return conds, params


def _day(value: str) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UploadError(f"Invalid date {value!r} (use YYYY-MM-DD, today or yesterday)") from exc
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        # What the database stores and compares: UTC, years 1 to 9999.
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise UploadError(f"Invalid date {value!r} (out of range in UTC)") from exc


def date_conditions(column: str, value: str) -> tuple[list[str], list[Any]]:
    conds: list[str] = []
    params: list[Any] = []
    for term in value.split(","):
        term = term.strip().lower()
        if not term:
            continue
        if term in ("null", "=null"):
            conds.append(f"{column} IS NULL")
            continue
        if term in ("!null", "!=null"):
            conds.append(f"{column} IS NOT NULL")
            continue
        op, rest = _split_op(term)
        day = _day(rest)
        is_day = len(rest) <= 10 or rest in ("today", "yesterday")
        try:
            next_day = day + timedelta(days=1)
        except OverflowError as exc:
            raise UploadError(f"Invalid date {rest!r} (the last day is 9999-12-30)") from exc
        if op == "=" and is_day:
            conds.append(f"{column} >= ? AND {column} < ?")
            params += [day, next_day]
        elif op in (">", "<=") and is_day:
            conds.append(f"{column} {'>=' if op == '>' else '<'} ?")
            params.append(next_day)
        else:
            conds.append(f"{column} {op} ?")
            params.append(day)
    return conds, params


def text_conditions(column: str, value: str) -> tuple[list[str], list[Any]]:
    negate = value.startswith("!")
    value = value[1:] if negate else value
    value = value.strip()
    if not value:
        return [], []
    if "@" in value:
        cond, param = f"LOWER({column}) = ?", value.lower()
    else:
        cond, param = f"LOWER({column}) LIKE ?", f"%{value.lower()}%"
    return ([f"NOT ({cond})"] if negate else [cond]), [param]


def single_params(req: Any) -> dict[str, str]:
    """The query parameters, each given at most once (400 otherwise)."""
    params = {}
    for name, value in req.params.items():
        if isinstance(value, list):
            raise UploadError(f"The query parameter {name!r} is given more than once")
        params[name] = value
    return params


def page_number(value: str | None) -> int:
    if value is None or value == "":
        return 1
    try:
        page = int(value)
    except ValueError as exc:
        raise UploadError(f"Invalid page {value!r}") from exc
    if not 1 <= page <= MAX_PAGE:
        raise UploadError(f"Invalid page {value!r} (1 to {MAX_PAGE})")
    return page
