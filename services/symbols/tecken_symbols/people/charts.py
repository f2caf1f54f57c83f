# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Statistics for the Stats page, drawn as inline SVG bar charts on the
server. Every chart has a text title, a description, a ``<title>`` per bar
(read by screen readers and shown on hover) and a table of the same numbers
under it, so nothing depends on colour."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from tecken_symbols.db import Database, utcnow
from tecken_symbols.people.html import esc


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def _days(days: int) -> list[date]:
    today = utcnow().date()
    return [today - timedelta(days=i) for i in range(days - 1, -1, -1)]


def uploads_per_day(db: Database, days: int, user_id: int | None) -> list[dict[str, Any]]:
    since = utcnow() - timedelta(days=days)
    sql = "SELECT created_at, size FROM uploads WHERE created_at >= ?"
    params: list[Any] = [since]
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    per: dict[date, list[int]] = {d: [0, 0] for d in _days(days)}
    for row in db.fetchall(sql, params):
        bucket = per.get(_day(row["created_at"]))
        if bucket is not None:
            bucket[0] += 1
            bucket[1] += int(row["size"] or 0)
    return [{"day": d, "count": v[0], "bytes": v[1]} for d, v in per.items()]


def uploads_per_user(db: Database, days: int) -> list[dict[str, Any]]:
    return db.fetchall(
        "SELECT u.email, COUNT(*) AS n, COALESCE(SUM(up.size), 0) AS bytes FROM uploads up "
        "JOIN users u ON u.id = up.user_id WHERE up.created_at >= ? GROUP BY u.email "
        "ORDER BY n DESC, u.email LIMIT 50",
        (utcnow() - timedelta(days=days),),
    )


def missing_per_day(db: Database, days: int) -> list[dict[str, Any]]:
    per: dict[date, int] = {d: 0 for d in _days(days)}
    rows = db.fetchall(
        "SELECT created_at FROM missing_symbols WHERE created_at >= ?",
        (utcnow() - timedelta(days=days),),
    )
    for row in rows:
        day = _day(row["created_at"])
        if day in per:
            per[day] += 1
    return [{"day": d, "count": n} for d, n in per.items()]


def top_missing(db: Database, days: int, limit: int = 10) -> list[dict[str, Any]]:
    return db.fetchall(
        "SELECT debug_file, SUM(count) AS total, COUNT(*) AS ids FROM missing_symbols "
        "WHERE modified_at >= ? GROUP BY debug_file ORDER BY total DESC, debug_file LIMIT ?",
        (utcnow() - timedelta(days=days), limit),
    )


def human_bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value} B"


def bar_chart(series: list[dict[str, Any]], field: str | list[tuple[str, str]], label: str) -> str:
    """An SVG bar chart by day, plus its data table (days with a value only)
    in a <details>. ``field``: one field of ``series`` (bars of ``label``), or
    several ``(field, name)`` pairs stacked in each day's bar, the first
    solid, the next hatched, named in a legend: told apart without colour."""
    stack = [(field, label)] if isinstance(field, str) else field
    width, height, pad = 600, 160, 30
    totals = [sum(s[f] for f, _ in stack) for s in series]
    top = max(totals, default=0)
    n = max(len(series), 1)
    bar_w = (width - pad) / n
    fmt = human_bytes if stack[0][0] == "bytes" else str
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower())
    bars = []
    for i, s in enumerate(series):
        x = pad + i * bar_w
        base = height - pad
        for k, (f, name) in enumerate(stack):
            value = s[f]
            bh = 0 if not top else (height - 2 * pad) * value / top
            base -= bh
            bars.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{bh:.1f}"{_fill(k, slug)}>'
                f"<title>{esc(s['day'].isoformat())}: {esc(fmt(value))} {esc(name)}</title></rect>"
            )
    first = series[0]["day"].isoformat() if series else ""
    last = series[-1]["day"].isoformat() if series else ""
    sums = "; ".join(f"{name} total {fmt(sum(s[f] for s in series))}" for f, name in stack)
    desc = f"{label} per day from {first} to {last}; {sums}; highest day {fmt(top)}"
    defs = (
        f'<defs><pattern id="hatch-{slug}" width="5" height="5" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="5" height="5" class="hatch-bg"/>'
        '<rect width="2" height="5" class="hatch"/></pattern></defs>'
        if len(stack) > 1
        else ""
    )
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(desc)}">'
        + defs
        + f'<line x1="{pad}" y1="{height - pad}" x2="{width}" y2="{height - pad}" class="axis"/>'
        f'<text x="0" y="{pad - 8}" class="label">max {esc(fmt(top))}</text>'
        f'<text x="{pad}" y="{height - 8}" class="label">{esc(first)}</text>'
        f'<text x="{width}" y="{height - 8}" class="label end">{esc(last)}</text>'
        + "".join(bars)
        + "</svg>"
    )
    legend = ""
    if len(stack) > 1:
        legend = (
            '<p class="legend" aria-hidden="true">'
            + " ".join(
                f'<span><svg class="swatch" viewBox="0 0 14 14"><rect width="14" height="14"'
                f"{_fill(k, slug)}/></svg> {esc(name)} ({'solid' if k == 0 else 'hatched'})</span>"
                for k, (_, name) in enumerate(stack)
            )
            + "</p>"
        )
    heads = "".join(f'<th scope="col" class="num">{esc(name)}</th>' for _, name in stack)
    rows = "".join(
        f"<tr><td>{esc(s['day'].isoformat())}</td>"
        + "".join(f'<td class="num">{esc(fmt(s[f]))}</td>' for f, _ in stack)
        + "</tr>"
        for s, total in zip(series, totals, strict=True)
        if total
    )
    data = (
        f"<details><summary>The numbers by day ({esc(label)})</summary><table>"
        f'<caption class="muted">{esc(desc)}</caption><thead><tr><th scope="col">Day</th>'
        f"{heads}</tr></thead><tbody>{rows}</tbody></table></details>"
    )
    return f'<figure>{svg}{legend}<figcaption class="muted">{esc(desc)}</figcaption>{data}</figure>'


def _fill(k: int, slug: str) -> str:
    """The first series is solid (class ``bar``), the others hatched."""
    return ' class="bar"' if k == 0 else f' class="bar2" fill="url(#hatch-{slug})"'
