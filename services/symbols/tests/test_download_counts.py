# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Downloads found and missing per day (issue 12's Stats chart): counted in
memory by the download route, written in batches by a background thread, on
SQLite and PostgreSQL."""

from __future__ import annotations

import time

from tecken_symbols.db import utcnow
from tecken_symbols.people.downloads import per_day

from .test_download import KEY, put_sym

MISSING = "nothere.pdb/0123456789ABCDEF0123456789ABCDEF1/nothere.sym"


def today(svc) -> dict:
    row = per_day(svc.ctx.db, 30)[-1]
    assert row["day"] == utcnow().date()
    return row


def test_found_and_missing_downloads_are_counted_per_day(make_service, database_url):
    svc = make_service(
        {"SYMBOLS_DOWNLOAD_COUNTS_FLUSH_INTERVAL": "3600"}, database_url=database_url
    )
    put_sym(svc)
    svc.app.get(f"/{KEY}", status=302)
    svc.app.get(f"/try/{KEY}", status=302)
    svc.app.head(f"/{KEY}", status=200)
    for _ in range(2):
        svc.app.get(f"/{MISSING}", status=404)
    svc.app.get("/x.pdb/" + "0" * 33 + "/x.sym", status=404)  # ignored: still not found
    # Nothing written on the request path.
    assert today(svc) == {"day": utcnow().date(), "found": 0, "missing": 0}
    assert svc.ctx.downloads.flush() == 1
    assert today(svc)["found"] == 3 and today(svc)["missing"] == 3
    # Later batches add to the day's row (one upsert per day).
    svc.app.get(f"/{MISSING}", status=404)
    svc.ctx.downloads.flush()
    assert (today(svc)["found"], today(svc)["missing"]) == (3, 4)
    assert len(per_day(svc.ctx.db, 90)) == 90


def test_the_flusher_thread_writes_counts_off_the_request_path(make_service):
    svc = make_service({"SYMBOLS_DOWNLOAD_COUNTS_FLUSH_INTERVAL": "0.2"})
    svc.app.get(f"/{MISSING}", status=404)
    deadline = time.monotonic() + 10
    while today(svc)["missing"] != 1:
        assert time.monotonic() < deadline, "the flusher never wrote"
        time.sleep(0.1)


def test_code_id_redirects_and_turned_off_counts_are_not_counted(make_service):
    svc = make_service(
        {
            "SYMBOLS_DOWNLOAD_COUNTS_ENABLED": "false",
            "SYMBOLS_DOWNLOAD_COUNTS_FLUSH_INTERVAL": "3600",
        }
    )
    svc.app.get(f"/{MISSING}", status=404)
    svc.ctx.downloads.flush()
    assert today(svc)["missing"] == 0


def test_stats_page_draws_found_and_missing_apart_without_colour(make_service):
    svc = make_service({"SYMBOLS_DOWNLOAD_COUNTS_FLUSH_INTERVAL": "3600"})
    put_sym(svc)
    svc.app.get(f"/{KEY}", status=302)
    svc.app.get(f"/{MISSING}", status=404)
    svc.app.get(f"/{MISSING}", status=404)
    svc.ctx.downloads.flush()
    text = svc.app.get("/stats").text
    assert "Downloads found and missing per day" in text
    # Stacked bars: found solid, missing hatched, each named in the legend,
    # in each bar's title and in the table under the chart.
    assert 'fill="url(#hatch-downloads)"' in text and 'id="hatch-downloads"' in text
    assert "found (solid)" in text and "missing (hatched)" in text
    day = utcnow().date().isoformat()
    assert f"<title>{day}: 1 found</title>" in text and f"<title>{day}: 2 missing</title>" in text
    assert f'<tr><td>{day}</td><td class="num">1</td><td class="num">2</td></tr>' in text
    assert "found total 1; missing total 2" in text
